package credentials_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/credentials/credentialstest"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/memory"
)

// otelSDK is an installed OpenTelemetry SDK that keeps what it records
// for the test to read: metrics through a ManualReader, spans in memory.
type otelSDK struct {
	reader *sdkmetric.ManualReader
	mp     *sdkmetric.MeterProvider
	spans  *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
}

func newOtelSDK(t testing.TB) *otelSDK {
	s := &otelSDK{reader: sdkmetric.NewManualReader(), spans: tracetest.NewSpanRecorder()}
	s.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(s.reader))
	s.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(s.spans))
	t.Cleanup(func() {
		s.mp.Shutdown(context.Background())
		s.tp.Shutdown(context.Background())
	})
	return s
}

func (s *otelSDK) config(cfg *credentials.Config) {
	cfg.MeterProvider, cfg.TracerProvider = s.mp, s.tp
}

func (s *otelSDK) collect(t testing.TB) metricdata.ResourceMetrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := s.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	return rm
}

// point is one data point of any kind, flattened for the assertions.
type point struct {
	attrs attribute.Set
	value int64 // a sum's or gauge's value, a histogram's count
}

func points(rm metricdata.ResourceMetrics, name string) []point {
	var out []point
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					out = append(out, point{p.Attributes, p.Value})
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					out = append(out, point{p.Attributes, p.Value})
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					out = append(out, point{p.Attributes, int64(p.Count)})
				}
			}
		}
	}
	return out
}

// total sums the points of name whose attributes include every one of want.
func total(rm metricdata.ResourceMetrics, name string, want ...attribute.KeyValue) int64 {
	var n int64
	for _, p := range points(rm, name) {
		match := true
		for _, kv := range want {
			if v, ok := p.attrs.Value(kv.Key); !ok || v != kv.Value {
				match = false
			}
		}
		if match {
			n += p.value
		}
	}
	return n
}

func result(r string) attribute.KeyValue { return attribute.String("tokencache.result", r) }

// memoryHits is the number of Token calls served from memory so far.
func memoryHits(t testing.TB, r *sdkmetric.ManualReader) int64 {
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	return total(rm, "tokencache.token.requests", result("memory"))
}

func spansNamed(spans []sdktrace.ReadOnlySpan, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

func spanAttr(s sdktrace.ReadOnlySpan, key string) (attribute.Value, bool) {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

func hasEvent(s sdktrace.ReadOnlySpan, name string) bool {
	for _, e := range s.Events() {
		if e.Name == name {
			return true
		}
	}
	return false
}

// noSecrets fails t if any span name, attribute, event or status, or any
// metric attribute, holds a token or client secret the server knows.
func (s *otelSDK) noSecrets(t *testing.T, srv *oauthtest.Server, extra ...string) {
	t.Helper()
	var b bytes.Buffer
	for _, sp := range s.spans.Ended() {
		fmt.Fprintln(&b, sp.Name(), sp.Status().Description)
		for _, kv := range sp.Attributes() {
			fmt.Fprintln(&b, kv.Key, kv.Value.String())
		}
		for _, e := range sp.Events() {
			fmt.Fprintln(&b, e.Name)
			for _, kv := range e.Attributes {
				fmt.Fprintln(&b, kv.Key, kv.Value.String())
			}
		}
	}
	rm := s.collect(t)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			fmt.Fprintln(&b, m.Name)
			for _, p := range points(rm, m.Name) {
				for _, kv := range p.attrs.ToSlice() {
					fmt.Fprintln(&b, kv.Key, kv.Value.String())
				}
			}
		}
	}
	if b.Len() < 100 {
		t.Fatalf("nothing recorded to scan: %q", b.String())
	}
	if srv.ContainsToken(b.Bytes()) {
		t.Fatalf("a token or client secret is in the telemetry:\n%s", b.String())
	}
	for _, x := range extra {
		if strings.Contains(b.String(), x) {
			t.Fatalf("%q is in the telemetry", x)
		}
	}
}

// TestTelemetryStorm: R replicas x G goroutines x E expiries make E
// refreshes, one endpoint call each, no takeover, and the results of
// tokencache.token.requests add up to the Token calls made.
func TestTelemetryStorm(t *testing.T) {
	const replicas, goroutines, expiries = 4, 20, 3
	o := credentialstest.StormOptions{TTL: time.Second, Latency: 50 * time.Millisecond}
	srv := credentialstest.NewServer(t, o)
	sdk := newOtelSDK(t)
	name := t.Name()
	seed := storage.NewStore(memory.New(&memory.Options{Name: name}))
	credentialstest.Seed(t, seed, "p", srv)

	var calls atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, replicas*goroutines)
	for range replicas {
		cfg := credentials.Config{Store: storage.NewStore(memory.New(&memory.Options{Name: name})), Profile: "p",
			Skew: 100 * time.Millisecond, RenewAhead: 100 * time.Millisecond, LeaseTTL: 5 * time.Second,
			PollInterval: 20 * time.Millisecond, ProfileAttribute: true}
		sdk.config(&cfg)
		c, err := credentials.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for range goroutines {
			wg.Go(func() {
				var last string
				for seen := 0; seen < expiries; {
					tok, err := c.Token(context.Background())
					calls.Add(1)
					if err != nil {
						errs <- err
						return
					}
					if v := tok.AccessToken.Reveal(); v != last {
						last = v
						seen++
					}
					time.Sleep(5 * time.Millisecond)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := srv.Stats().RefreshCalls; n != expiries {
		t.Fatalf("%d refresh calls, want %d", n, expiries)
	}

	rm := sdk.collect(t)
	sum := int64(0)
	for _, r := range []string{"memory", "adopted", "waited", "refreshed", "failed"} {
		n := total(rm, "tokencache.token.requests", result(r))
		t.Logf("Token results %-9s %d", r, n)
		sum += n
	}
	if sum != calls.Load() {
		t.Errorf("Token results add up to %d, want the %d calls made", sum, calls.Load())
	}
	if n := total(rm, "tokencache.token.requests", result("failed")); n != 0 {
		t.Errorf("%d failed Token results", n)
	}
	if n := total(rm, "tokencache.token.requests", attribute.String("tokencache.profile", "p")); n != calls.Load() {
		t.Errorf("%d requests carry the opted-in profile attribute, want %d", n, calls.Load())
	}
	if n := total(rm, "tokencache.refresh.duration", result("refreshed")); n != expiries {
		t.Errorf("%d flights refreshed, want %d", n, expiries)
	}
	if n := total(rm, "tokencache.token_endpoint.request.duration", attribute.Int("http.response.status_code", 200)); n != expiries {
		t.Errorf("%d successful token endpoint calls recorded, want %d", n, expiries)
	}
	if n := total(rm, "tokencache.token_endpoint.request.duration"); n != expiries {
		t.Errorf("%d token endpoint calls recorded, want %d", n, expiries)
	}
	if n := total(rm, "tokencache.lease.takeovers"); n != 0 {
		t.Errorf("%d takeovers, want 0", n)
	}
	if n := total(rm, "tokencache.refresh_token.unpersisted"); n != 0 {
		t.Errorf("unpersisted gauge %d, want 0", n)
	}
	// Store calls: by backend and operation, the lease writes' conflicts
	// as such, no errors.
	mem := attribute.String("db.system.name", "memory")
	if n := total(rm, storage.MetricOperationDuration, mem, attribute.String("db.operation.name", "get")); n < expiries {
		t.Errorf("%d store gets recorded", n)
	}
	puts := total(rm, storage.MetricOperationDuration, mem, attribute.String("db.operation.name", "put"), attribute.String("tokencache.store.result", "ok"))
	if puts < 2*expiries {
		t.Errorf("%d successful store puts recorded, want at least a lease and a token per expiry (%d)", puts, 2*expiries)
	}
	if n := total(rm, storage.MetricOperationDuration, attribute.String("tokencache.store.result", "error")); n != 0 {
		t.Errorf("%d store errors recorded", n)
	}

	// Spans: E flights refreshed, each with its endpoint call, lease and
	// write-back as children.
	spans := sdk.spans.Ended()
	byID := map[[8]byte]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byID[s.SpanContext().SpanID()] = s
	}
	refreshed := 0
	for _, f := range spansNamed(spans, "tokencache.refresh") {
		if v, _ := spanAttr(f, "tokencache.result"); v.AsString() == "refreshed" {
			refreshed++
		}
	}
	if refreshed != expiries {
		t.Errorf("%d refresh spans say refreshed, want %d", refreshed, expiries)
	}
	for _, name := range []string{"tokencache.token_endpoint", "tokencache.write_back"} {
		got := spansNamed(spans, name)
		if len(got) != expiries {
			t.Errorf("%d %s spans, want %d", len(got), name, expiries)
		}
		for _, s := range got {
			if p := byID[s.Parent().SpanID()]; p == nil || p.Name() != "tokencache.refresh" {
				t.Errorf("%s span is not a child of a refresh flight", name)
			}
		}
	}
	for _, s := range spansNamed(spans, "get memory") {
		if p := byID[s.Parent().SpanID()]; p == nil || p.Name() != "tokencache.store.read" {
			t.Fatalf("store get span is not a child of a store read")
		}
	}
	sdk.noSecrets(t, srv, "storm-secret")
}

// TestTelemetryKilledHolder: a lease left by a holder that died is taken
// over once, with a wait, an event and a warning.
func TestTelemetryKilledHolder(t *testing.T) {
	f := newFixture(t, oauthtest.Options{Rotate: true})
	sdk := newOtelSDK(t)
	_, _, err := f.store.UpdateLease(context.Background(), "p", func(r *storage.Record) error {
		r.Lease = &storage.Lease{Owner: "dead-holder", Until: time.Now().Add(500 * time.Millisecond), TTL: storage.Duration(500 * time.Millisecond)}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	c := f.creds(t, func(cfg *credentials.Config) {
		sdk.config(cfg)
		cfg.LeaseTTL = 500 * time.Millisecond
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
	if _, err := c.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	rm := sdk.collect(t)
	if n := total(rm, "tokencache.lease.takeovers"); n != 1 {
		t.Errorf("%d takeovers, want 1", n)
	}
	if n := total(rm, "tokencache.lease.wait.duration"); n != 1 {
		t.Errorf("%d lease waits recorded, want 1", n)
	}
	if n := total(rm, "tokencache.token.requests", result("refreshed")); n != 1 {
		t.Errorf("%d refreshed Token results, want 1", n)
	}
	flights := spansNamed(sdk.spans.Ended(), "tokencache.refresh")
	if len(flights) != 1 || !hasEvent(flights[0], "tokencache.lease.wait") || !hasEvent(flights[0], "tokencache.lease.takeover") {
		t.Fatalf("want one flight with wait and takeover events, got %d flights", len(flights))
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "took over") || !strings.Contains(logs.String(), "store=flaky:") {
		t.Errorf("no takeover warning with the store in the log:\n%s", logs.String())
	}
	sdk.noSecrets(t, f.srv, "storm-secret")
}

// TestTelemetryStoreOutage: a rotated refresh token the store did not
// take shows in the unpersisted gauge until the store takes it.
func TestTelemetryStoreOutage(t *testing.T) {
	f := newFixture(t, oauthtest.Options{Rotate: true})
	sdk := newOtelSDK(t)
	c := f.creds(t, sdk.config)
	hold := f.srv.HoldRefreshes(oauthtest.AfterRotate)
	go func() {
		<-hold.Arrived()
		f.flaky.down.Store(true)
		hold.Release()
	}()
	if _, err := c.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	rm := sdk.collect(t)
	if n := total(rm, "tokencache.refresh_token.unpersisted"); n != 1 {
		t.Fatalf("unpersisted gauge %d during the outage, want 1", n)
	}
	if n := total(rm, storage.MetricOperationDuration, attribute.String("error.type", "unavailable"), attribute.String("db.system.name", "flaky")); n == 0 {
		t.Error("no unavailable store call recorded")
	}
	f.flaky.down.Store(false)
	deadline := time.Now().Add(5 * time.Second)
	for total(sdk.collect(t), "tokencache.refresh_token.unpersisted") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("unpersisted gauge never went back to 0 after the store came back")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if rec := f.record(t); !f.srv.ValidRefresh(rec.RefreshToken.Reveal()) {
		t.Fatal("the stored refresh token is not the rotated one")
	}
	sdk.noSecrets(t, f.srv, "storm-secret")
}

// TestTelemetryGrantRejected: an endpoint that refuses the grant is one
// endpoint call with status 400 and invalid_grant, a failed flight and a
// failed Token result, recorded without secrets.
func TestTelemetryGrantRejected(t *testing.T) {
	f := newFixture(t, oauthtest.Options{Rotate: true})
	sdk := newOtelSDK(t)
	rt := f.record(t).RefreshToken.Reveal()
	f.srv.Revoke(rt)
	c := f.creds(t, sdk.config)
	_, err := c.Token(context.Background())
	if !errors.Is(err, credentials.ErrReauthRequired) {
		t.Fatalf("got %v, want ErrReauthRequired", err)
	}
	rm := sdk.collect(t)
	if n := total(rm, "tokencache.token_endpoint.request.duration",
		attribute.Int("http.response.status_code", 400), attribute.String("tokencache.oauth.error", "invalid_grant"),
		attribute.String("error.type", "invalid_grant"), attribute.String("server.address", "127.0.0.1")); n != 1 {
		t.Errorf("%d rejected endpoint calls recorded, want 1: %v", n, points(rm, "tokencache.token_endpoint.request.duration"))
	}
	if n := total(rm, "tokencache.token.requests", result("failed")); n != 1 {
		t.Errorf("%d failed Token results, want 1", n)
	}
	if n := total(rm, "tokencache.refresh.duration", result("failed")); n != 1 {
		t.Errorf("%d failed flights, want 1", n)
	}
	flights := spansNamed(sdk.spans.Ended(), "tokencache.refresh")
	if len(flights) != 1 || flights[0].Status().Code != codes.Error {
		t.Fatalf("want one failed flight span, got %d", len(flights))
	}
	if v, _ := spanAttr(flights[0], "error.type"); v.AsString() != "reauth_required" {
		t.Errorf("flight error.type %q, want reauth_required", v.AsString())
	}
	sdk.noSecrets(t, f.srv, "storm-secret", rt)
}

// TestTelemetryDefaultsToGlobals: without providers the otel globals are
// used, which are no-ops: nothing breaks, Token still works.
func TestTelemetryDefaultsToGlobals(t *testing.T) {
	f := newFixture(t, oauthtest.Options{Rotate: true})
	c := f.creds(t, nil)
	if _, err := c.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestTelemetryProfiles: the Credentials of one Profiles share one set of
// instruments; results stay counted after a profile is removed.
func TestTelemetryProfiles(t *testing.T) {
	f := newFixture(t, oauthtest.Options{Rotate: true})
	sdk := newOtelSDK(t)
	for _, profileAttr := range []bool{false, true} {
		t.Run(fmt.Sprint("profile attribute ", profileAttr), func(t *testing.T) {
			st := storage.NewStore(memory.New(nil))
			defer st.Close() // Profiles.Close leaves it open
			for _, p := range []string{"a", "b"} {
				credentialstest.Seed(t, st, p, f.srv)
			}
			cfg := credentials.Config{Store: st, ProfileAttribute: profileAttr, JournalDir: "-"}
			sdk.config(&cfg)
			ps, err := credentials.NewProfiles(cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{"a", "a", "b"} {
				if _, err := ps.Token(context.Background(), p); err != nil {
					t.Fatal(err)
				}
			}
			if err := ps.Remove(context.Background(), "a"); err != nil {
				t.Fatal(err)
			}
			rm := sdk.collect(t)
			if n := total(rm, "tokencache.token.requests", result("refreshed")); n < 2 {
				t.Errorf("%d refreshed results, want at least 2", n)
			}
			if n := total(rm, "tokencache.token.requests"); n != 3 {
				t.Errorf("%d Token results in this Profiles, want 3", n)
			}
			if profileAttr {
				if n := total(rm, "tokencache.token.requests", attribute.String("tokencache.profile", "a")); n != 2 {
					t.Errorf("%d results for profile a, want 2", n)
				}
			}
			ps.Close()
			if n := total(sdk.collect(t), "tokencache.token.requests"); n != 0 {
				t.Errorf("after Close the Profiles still reports %d results", n)
			}
		})
	}
}
