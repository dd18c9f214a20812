package main

import (
	"github.com/spf13/pflag"
)

// The --otel flag of bench and demo: export one run's telemetry. Their
// replica processes do the exporting, since the library runs there; they
// honour the standard OTEL_TRACES_EXPORTER and OTEL_METRICS_EXPORTER
// variables with the value "console" (OpenTelemetry's stdout exporters,
// JSON, to the replica's standard error, which the parent passes through),
// and --otel stdout sets both for them.

const (
	envTracesExporter  = "OTEL_TRACES_EXPORTER"
	envMetricsExporter = "OTEL_METRICS_EXPORTER"
)

func addOtelFlag(f *pflag.FlagSet, v *string) {
	f.StringVar(v, "otel", "", `export each replica's OpenTelemetry spans and metrics for this run: "stdout" (JSON on standard error); the OTEL_TRACES_EXPORTER and OTEL_METRICS_EXPORTER variables set to "console" do the same`)
}

// otelEnviron returns the environment that makes replicas export as
// --otel asks.
func otelEnviron(v string) ([]string, error) {
	switch v {
	case "":
		return nil, nil
	case "stdout", "console":
		return []string{envTracesExporter + "=console", envMetricsExporter + "=console"}, nil
	}
	return nil, usagef("--otel must be stdout (OTLP export is not built in: point an OpenTelemetry SDK of your own at the library instead)")
}
