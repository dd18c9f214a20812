package main

import (
	"context"
	"io"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	"go.opentelemetry.io/otel/sdk/trace"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/storage"
)

// replicaTelemetry is a replica's OpenTelemetry SDK: a ManualReader that
// the bench and the demo read their figures from, and the stdout exporters
// when OTEL_TRACES_EXPORTER or OTEL_METRICS_EXPORTER is "console".
type replicaTelemetry struct {
	reader *metric.ManualReader
	mp     *metric.MeterProvider
	tp     *trace.TracerProvider // nil unless traces are exported
}

func newReplicaTelemetry(getenv func(string) string, stderr io.Writer) (*replicaTelemetry, error) {
	t := &replicaTelemetry{reader: metric.NewManualReader()}
	opts := []metric.Option{metric.WithReader(t.reader)}
	if getenv(envMetricsExporter) == "console" {
		exp, err := stdoutmetric.New(stdoutmetric.WithWriter(stderr))
		if err != nil {
			return nil, err
		}
		// One export at the end (Shutdown) plus one a minute for long runs.
		opts = append(opts, metric.WithReader(metric.NewPeriodicReader(exp, metric.WithInterval(time.Minute))))
	}
	res := resource.NewSchemaless(attribute.String("service.name", "tokencache-replica"))
	opts = append(opts, metric.WithResource(res))
	t.mp = metric.NewMeterProvider(opts...)
	if getenv(envTracesExporter) == "console" {
		exp, err := stdouttrace.New(stdouttrace.WithWriter(stderr))
		if err != nil {
			return nil, err
		}
		t.tp = trace.NewTracerProvider(trace.WithBatcher(exp), trace.WithResource(res))
	}
	return t, nil
}

// configure has cfg's Credentials and store record into t.
func (t *replicaTelemetry) configure(cfg *credentials.Config) {
	cfg.MeterProvider = t.mp
	if t.tp != nil {
		cfg.TracerProvider = t.tp
	}
}

// Shutdown flushes the exporters.
func (t *replicaTelemetry) Shutdown(ctx context.Context) {
	t.mp.Shutdown(ctx)
	if t.tp != nil {
		t.tp.Shutdown(ctx)
	}
}

// libraryFigures is what a replica's library recorded, read from its
// metrics: the bench and the demo report these rather than count again.
type libraryFigures struct {
	// Requests are the Token calls by result: memory, adopted, waited,
	// refreshed, failed.
	Requests map[string]int64 `json:"token_requests"`
	// Flights are the refresh flights by result; Renewals those started
	// ahead of expiry.
	Flights  map[string]int64 `json:"flights"`
	Renewals int64            `json:"renewals"`
	// EndpointCalls are the token endpoint calls, EndpointErrors the
	// failed ones.
	EndpointCalls  int64 `json:"token_endpoint_calls"`
	EndpointErrors int64 `json:"token_endpoint_errors"`
	LeaseWaits     int64 `json:"lease_waits"`
	Takeovers      int64 `json:"lease_takeovers"`
	Unpersisted    int64 `json:"unpersisted_refresh_tokens"`
	// StoreCalls are the store calls by operation; conflicts and errors
	// are among them.
	StoreCalls     map[string]int64 `json:"store_calls"`
	StoreConflicts int64            `json:"store_conflicts"`
	StoreErrors    int64            `json:"store_errors"`
}

func (f *libraryFigures) add(g *libraryFigures) { f.addTimes(g, 1) }

// sub takes g, earlier figures of the same replica, off f. The
// unpersisted gauge is a level, not a count: it stays.
func (f *libraryFigures) sub(g *libraryFigures) {
	if g != nil {
		u := f.Unpersisted
		f.addTimes(g, -1)
		f.Unpersisted = u
	}
}

func (f *libraryFigures) addTimes(g *libraryFigures, k int64) {
	if g == nil {
		return
	}
	addMap := func(dst *map[string]int64, src map[string]int64) {
		if *dst == nil {
			*dst = map[string]int64{}
		}
		for key, v := range src {
			(*dst)[key] += k * v
		}
	}
	addMap(&f.Requests, g.Requests)
	addMap(&f.Flights, g.Flights)
	addMap(&f.StoreCalls, g.StoreCalls)
	f.Renewals += k * g.Renewals
	f.EndpointCalls += k * g.EndpointCalls
	f.EndpointErrors += k * g.EndpointErrors
	f.LeaseWaits += k * g.LeaseWaits
	f.Takeovers += k * g.Takeovers
	f.Unpersisted += k * g.Unpersisted
	f.StoreConflicts += k * g.StoreConflicts
	f.StoreErrors += k * g.StoreErrors
}

// calls is the number of Token calls the library counted.
func (f *libraryFigures) calls() int64 {
	n := int64(0)
	for _, v := range f.Requests {
		n += v
	}
	return n
}

// figures reads the library's metrics so far.
func (t *replicaTelemetry) figures(ctx context.Context) (*libraryFigures, error) {
	var rm metricdata.ResourceMetrics
	if err := t.reader.Collect(ctx, &rm); err != nil {
		return nil, err
	}
	f := &libraryFigures{Requests: map[string]int64{}, Flights: map[string]int64{}, StoreCalls: map[string]int64{}}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			forEachPoint(m, func(attr func(string) string, n int64) {
				switch m.Name {
				case "tokencache.token.requests":
					f.Requests[attr("tokencache.result")] += n
				case "tokencache.refresh.duration":
					f.Flights[attr("tokencache.result")] += n
				case "tokencache.renewals":
					f.Renewals += n
				case "tokencache.token_endpoint.request.duration":
					f.EndpointCalls += n
					if attr("error.type") != "" {
						f.EndpointErrors += n
					}
				case "tokencache.lease.wait.duration":
					f.LeaseWaits += n
				case "tokencache.lease.takeovers":
					f.Takeovers += n
				case "tokencache.refresh_token.unpersisted":
					f.Unpersisted += n
				case storage.MetricOperationDuration:
					f.StoreCalls[attr("db.operation.name")] += n
					switch attr("tokencache.store.result") {
					case "conflict":
						f.StoreConflicts += n
					case "error":
						f.StoreErrors += n
					}
				}
			})
		}
	}
	return f, nil
}

// forEachPoint calls fn with each data point's attributes and value (a
// histogram's count).
func forEachPoint(m metricdata.Metrics, fn func(attr func(string) string, n int64)) {
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			fn(func(k string) string { v, _ := p.Attributes.Value(attribute.Key(k)); return v.AsString() }, p.Value)
		}
	case metricdata.Gauge[int64]:
		for _, p := range d.DataPoints {
			fn(func(k string) string { v, _ := p.Attributes.Value(attribute.Key(k)); return v.AsString() }, p.Value)
		}
	case metricdata.Histogram[float64]:
		for _, p := range d.DataPoints {
			fn(func(k string) string { v, _ := p.Attributes.Value(attribute.Key(k)); return v.AsString() }, int64(p.Count))
		}
	}
}
