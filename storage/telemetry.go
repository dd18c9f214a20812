package storage

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Store telemetry follows OpenTelemetry's database client conventions:
// every adapter call is a client span named "{operation} {system}" and a
// measurement of db.client.operation.duration (seconds) with
// db.system.name (the backend), db.operation.name (get, put, delete, list,
// wait) and tokencache.store.result (ok, not_found, conflict, error), plus
// error.type when it failed. A conditional put that lost is a conflict, not
// an error: it is how the protocol learns that another writer moved first.
// No key, value or URL goes into an attribute.

const storeInstrumentation = "github.com/tokencache/tokencache/storage"

// MetricOperationDuration is the store call duration histogram's name.
const MetricOperationDuration = "db.client.operation.duration"

var (
	attrSystem    = attribute.Key("db.system.name")
	attrOperation = attribute.Key("db.operation.name")
	attrResult    = attribute.Key("tokencache.store.result")
	attrErrorType = attribute.Key("error.type")
)

// Store operations as db.operation.name.
const (
	opGet    = "get"
	opPut    = "put"
	opDelete = "delete"
	opList   = "list"
	opWait   = "wait"
)

type storeTelemetry struct {
	tracer   trace.Tracer
	duration metric.Float64Histogram
	system   attribute.KeyValue
}

func newStoreTelemetry(mp metric.MeterProvider, tp trace.TracerProvider, system string) *storeTelemetry {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	t := &storeTelemetry{tracer: tp.Tracer(storeInstrumentation), system: attrSystem.String(system)}
	t.duration, _ = mp.Meter(storeInstrumentation).Float64Histogram(MetricOperationDuration, metric.WithUnit("s"),
		metric.WithDescription("Duration of store operations"),
		metric.WithExplicitBucketBoundaries(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
	return t
}

// Instrument sends the store's metrics and spans to mp and tp (nil: the
// otel globals, the default). credentials.Config's providers instrument
// the store they are given, so that a caller sets them in one place.
func (s *Store) Instrument(mp metric.MeterProvider, tp trace.TracerProvider) {
	s.tel.Store(newStoreTelemetry(mp, tp, s.system()))
}

// system names the backend for db.system.name: the scheme of the store's
// URL, or the adapter's package name for a Store made by NewStore.
func (s *Store) system() string {
	if scheme, _, ok := strings.Cut(s.name, ":"); ok && scheme != "" {
		return scheme
	}
	t := reflect.TypeOf(s.adapter)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.PkgPath() == "" {
		return "other"
	}
	p := t.PkgPath()
	return p[strings.LastIndexByte(p, '/')+1:]
}

func (s *Store) telemetry() *storeTelemetry {
	if t := s.tel.Load(); t != nil {
		return t
	}
	s.tel.CompareAndSwap(nil, newStoreTelemetry(nil, nil, s.system()))
	return s.tel.Load()
}

// observe starts the span of one adapter call; done ends it and records
// its duration.
func (s *Store) observe(ctx context.Context, op string) (context.Context, func(error)) {
	t := s.telemetry()
	start := time.Now()
	opAttr := attrOperation.String(op)
	ctx, span := t.tracer.Start(ctx, op+" "+t.system.Value.AsString(), trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(t.system, opAttr))
	return ctx, func(err error) {
		result, etype := storeResult(op, err)
		kv := []attribute.KeyValue{t.system, opAttr, attrResult.String(result)}
		if etype != "" {
			kv = append(kv, attrErrorType.String(etype))
			span.SetStatus(codes.Error, etype)
			span.SetAttributes(attrErrorType.String(etype))
		}
		span.SetAttributes(attrResult.String(result))
		span.End()
		t.duration.Record(context.Background(), time.Since(start).Seconds(), metric.WithAttributes(kv...))
	}
}

// storeResult classifies an adapter call's outcome. A wait that ended
// with its context ended as waits do.
func storeResult(op string, err error) (result, errorType string) {
	switch {
	case err == nil:
		return "ok", ""
	case errors.Is(err, ErrNotFound):
		return "not_found", ""
	case errors.Is(err, ErrConflict):
		return "conflict", ""
	case op == opWait && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)):
		return "ok", ""
	case op == opWait && errors.Is(err, errors.ErrUnsupported):
		return "ok", ""
	}
	if t := ErrorType(err); t != "" {
		return "error", t
	}
	return "error", "_OTHER"
}

// ErrorType names the kind of a storage error for an error.type attribute:
// the sentinel it matches ("unavailable", "conflict", ...), "timeout" or
// "canceled" for a context error, "" for an error of another kind.
func ErrorType(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, ErrNotFound):
		return "not_found"
	case errors.Is(err, ErrConflict):
		return "conflict"
	case errors.Is(err, ErrUnavailable):
		return "unavailable"
	case errors.Is(err, ErrCorrupt):
		return "corrupt"
	case errors.Is(err, ErrInvalid):
		return "invalid"
	case errors.Is(err, ErrReadOnly):
		return "read_only"
	case errors.Is(err, ErrClosed):
		return "closed"
	case errors.Is(err, ErrLineage):
		return "lineage"
	}
	return ""
}
