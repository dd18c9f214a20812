package credentials

import (
	"context"
	"errors"
	"net"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/tokencache/tokencache/storage"
)

// Telemetry: the metrics and spans of the refresh protocol, recorded
// through the OpenTelemetry API only (Config.MeterProvider and
// Config.TracerProvider, the otel globals by default, which cost next to
// nothing until an SDK is installed). The names, units and attributes are
// listed in the package documentation (Observability).
//
// The cached path of Token records nothing through the API: it counts a
// hit with one atomic add on a counter sharded by the calling goroutine's
// stack, and an observable counter reports the sums when the SDK collects.
// Every other Token result is rare (one per flight per waiting caller) and
// counted the same way, so that the results of tokencache.token.requests
// add up to the calls made.

// instrumentationName names the meter and tracer.
const instrumentationName = "github.com/tokencache/tokencache/credentials"

// Metric names.
const (
	metricRequests    = "tokencache.token.requests"
	metricRefresh     = "tokencache.refresh.duration"
	metricEndpoint    = "tokencache.token_endpoint.request.duration"
	metricLeaseWait   = "tokencache.lease.wait.duration"
	metricTakeovers   = "tokencache.lease.takeovers"
	metricUnpersisted = "tokencache.refresh_token.unpersisted"
	metricJournal     = "tokencache.journal.replays"
	metricRenewals    = "tokencache.renewals"
	metricHoldOffs    = "tokencache.hold_offs"
)

// Span and event names.
const (
	spanFlight     = "tokencache.refresh"
	spanStoreRead  = "tokencache.store.read"
	spanLeaseTake  = "tokencache.lease.take"
	spanEndpoint   = "tokencache.token_endpoint"
	spanWriteBack  = "tokencache.write_back"
	eventWait      = "tokencache.lease.wait"
	eventAdopt     = "tokencache.adopt"
	eventTakeover  = "tokencache.lease.takeover"
	eventException = "exception"
)

// Attribute keys.
const (
	attrResult     = attribute.Key("tokencache.result")
	attrTrigger    = attribute.Key("tokencache.refresh.trigger")
	attrProfile    = attribute.Key("tokencache.profile")
	attrOAuthError = attribute.Key("tokencache.oauth.error")
	attrOutcome    = attribute.Key("tokencache.outcome")
	attrReason     = attribute.Key("tokencache.reason")
	attrErrorType  = attribute.Key("error.type")
	attrMethod     = attribute.Key("http.request.method")
	attrStatus     = attribute.Key("http.response.status_code")
	attrServer     = attribute.Key("server.address")
	attrPort       = attribute.Key("server.port")
)

// result is how a Token call, or a flight, ended.
type result uint8

const (
	resultUnset     result = iota // a flight that did not run: derived from its outcome
	resultMemory                  // served from memory
	resultAdopted                 // read from the store, which another process had refreshed
	resultWaited                  // read from the store after waiting for another process's lease
	resultRefreshed               // refreshed by this process at the token endpoint
	resultFailed                  // an error, the caller's context's included
	numResults
)

var resultNames = [numResults]string{"", "memory", "adopted", "waited", "refreshed", "failed"}

func (r result) String() string { return resultNames[r] }

// durationBuckets (seconds) span a store round trip to a lease that ran out.
var durationBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// telemetry holds the instruments of one Credentials, or of every
// Credentials of one Profiles, created once.
type telemetry struct {
	tracer      trace.Tracer
	profileAttr bool
	owned       bool // made by New for one Credentials: its Close unregisters

	refresh     metric.Float64Histogram
	endpoint    metric.Float64Histogram
	leaseWait   metric.Float64Histogram
	takeovers   metric.Int64Counter
	journal     metric.Int64Counter
	renewals    metric.Int64Counter
	holdOffs    metric.Int64Counter
	requests    metric.Int64ObservableCounter
	unpersisted metric.Int64ObservableGauge
	reg         metric.Registration

	// shared counts the Token results of every Credentials of this
	// telemetry when they are not told apart by profile.
	shared *requestStats

	mu      sync.Mutex
	live    map[*Credentials]struct{}
	retired map[string]*[numResults]int64 // counts of closed Credentials, by profile ("" without the attribute)
}

func newTelemetry(cfg *Config) *telemetry {
	mp, tp := cfg.MeterProvider, cfg.TracerProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	if cfg.MeterProvider != nil || cfg.TracerProvider != nil {
		cfg.Store.Instrument(cfg.MeterProvider, cfg.TracerProvider)
	}
	m := mp.Meter(instrumentationName)
	t := &telemetry{
		tracer:      tp.Tracer(instrumentationName),
		profileAttr: cfg.ProfileAttribute,
		live:        map[*Credentials]struct{}{},
		retired:     map[string]*[numResults]int64{},
	}
	if !t.profileAttr {
		t.shared = newRequestStats(maxSharedShards)
	}
	buckets := metric.WithExplicitBucketBoundaries(durationBuckets...)
	// Instrument errors are reported to otel's error handler and yield a
	// no-op instrument: telemetry never stops a token from being served.
	t.refresh, _ = m.Float64Histogram(metricRefresh, metric.WithUnit("s"), buckets,
		metric.WithDescription("Duration of refresh flights: from a Token call that found no usable token in memory to the token or error it got, by result"))
	t.endpoint, _ = m.Float64Histogram(metricEndpoint, metric.WithUnit("s"), buckets,
		metric.WithDescription("Duration of token endpoint requests (one per attempt), by HTTP status and OAuth error code"))
	t.leaseWait, _ = m.Float64Histogram(metricLeaseWait, metric.WithUnit("s"), buckets,
		metric.WithDescription("Time a flight spent waiting for another process's refresh lease"))
	t.takeovers, _ = m.Int64Counter(metricTakeovers, metric.WithUnit("{lease}"),
		metric.WithDescription("Refresh leases taken over from another holder after they ran out"))
	t.journal, _ = m.Int64Counter(metricJournal, metric.WithUnit("{entry}"),
		metric.WithDescription("Recovery journal entries replayed into the store, by outcome"))
	t.renewals, _ = m.Int64Counter(metricRenewals, metric.WithUnit("{flight}"),
		metric.WithDescription("Refresh flights started while the current token was still served (renewal ahead of expiry)"))
	t.holdOffs, _ = m.Int64Counter(metricHoldOffs, metric.WithUnit("{hold_off}"),
		metric.WithDescription("Hold-offs set after a failed refresh, during which no new refresh starts"))
	t.requests, _ = m.Int64ObservableCounter(metricRequests, metric.WithUnit("{request}"),
		metric.WithDescription("Calls of Token, Refresh and Rejected, by how they were served"))
	t.unpersisted, _ = m.Int64ObservableGauge(metricUnpersisted, metric.WithUnit("{token}"),
		metric.WithDescription("Rotated refresh tokens held in memory or the recovery journal because the store did not take them"))
	t.reg, _ = m.RegisterCallback(t.observe, t.requests, t.unpersisted)
	return t
}

// observe reports the observable instruments: every live Credentials'
// counts plus those of the closed ones, so that the counter never goes
// back.
func (t *telemetry) observe(_ context.Context, o metric.Observer) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	type sums struct {
		counts  [numResults]int64
		pending int64
	}
	by := map[string]*sums{}
	get := func(profile string) *sums {
		if !t.profileAttr {
			profile = ""
		}
		s := by[profile]
		if s == nil {
			s = &sums{}
			by[profile] = s
		}
		return s
	}
	if t.shared != nil {
		t.shared.addTo(&get("").counts)
	}
	for c := range t.live {
		s := get(c.cfg.Profile)
		if c.stats != t.shared {
			c.stats.addTo(&s.counts)
		}
		c.mu.Lock()
		if c.pending != nil {
			s.pending++
		}
		c.mu.Unlock()
	}
	for p, r := range t.retired {
		s := get(p)
		for i := range r {
			s.counts[i] += r[i]
		}
	}
	for p, s := range by {
		for r := resultMemory; r < numResults; r++ {
			o.ObserveInt64(t.requests, s.counts[r], metric.WithAttributes(t.attrs(p, attrResult.String(r.String()))...))
		}
		o.ObserveInt64(t.unpersisted, s.pending, metric.WithAttributes(t.attrs(p)...))
	}
	return nil
}

// attrs returns kv with the profile attribute when it is enabled.
func (t *telemetry) attrs(profile string, kv ...attribute.KeyValue) []attribute.KeyValue {
	if t.profileAttr {
		return append(kv, attrProfile.String(profile))
	}
	return kv
}

func (t *telemetry) join(c *Credentials) {
	t.mu.Lock()
	t.live[c] = struct{}{}
	t.mu.Unlock()
}

// leave folds c's counts into the retired ones; the last Credentials of
// its own telemetry unregisters the callback.
func (t *telemetry) leave(c *Credentials) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.live[c]; !ok {
		return
	}
	delete(t.live, c)
	if c.stats != t.shared {
		r := t.retired[c.cfg.Profile]
		if r == nil {
			r = &[numResults]int64{}
			t.retired[c.cfg.Profile] = r
		}
		c.stats.addTo(r)
	}
	if t.owned && t.reg != nil {
		t.reg.Unregister()
		t.reg = nil
	}
}

// close unregisters a shared telemetry (Profiles.Close).
func (t *telemetry) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.reg != nil {
		t.reg.Unregister()
		t.reg = nil
	}
}

// requestStats counts Token results: of one Credentials, or of every
// Credentials of a telemetry when the profile attribute is off. Memory
// hits, the hot path, go to a counter sharded by the caller's goroutine
// stack, so that goroutines on different cores rarely share a cache line.
type requestStats struct {
	hits   []paddedCount // a power of two of them
	others [numResults]atomic.Int64
}

// statsFor returns the counts c's results go to.
func (t *telemetry) statsFor() *requestStats {
	if t.shared != nil {
		return t.shared
	}
	return newRequestStats(maxOwnShards)
}

type paddedCount struct {
	n atomic.Int64
	_ [56]byte
}

// newRequestStats shards the hits twice per core, at least 4 and at most
// max: enough that the goroutines of a machine's cores seldom meet on one.
func newRequestStats(max int) *requestStats {
	n := 4
	for n < 2*runtime.GOMAXPROCS(0) && n < max {
		n *= 2
	}
	return &requestStats{hits: make([]paddedCount, n)}
}

// Shards of the shared counts, and of each Credentials' own (profile
// attribute on: memory per profile matters for many profiles).
const (
	maxSharedShards = 64
	maxOwnShards    = 8
)

// hit counts a Token call served from memory.
func (c *Credentials) hit() {
	h := c.hits
	h[stackShard()&uintptr(len(h)-1)].n.Add(1)
}

// stackShard picks a shard from the address of the caller's stack: a
// goroutine's stack is at least 8 KiB and stacks are allocated apart, so
// concurrent goroutines land on different shards without any per-call
// randomness (which, drawn per call, would make every core touch every
// shard). Only the address is used, never the memory behind it.
func stackShard() uintptr {
	var marker byte
	return uintptr(unsafe.Pointer(&marker)) >> 13
}

func (s *requestStats) count(r result) { s.others[r].Add(1) }

func (s *requestStats) addTo(out *[numResults]int64) {
	for i := range s.hits {
		out[resultMemory] += s.hits[i].n.Load()
	}
	for r := resultAdopted; r < numResults; r++ {
		out[r] += s.others[r].Load()
	}
}

// awaited counts the result of a Token call that joined flight f. f.result
// is read only once f is done (err is nil or f's own error then): a caller
// whose context ended leaves a flight that still runs.
func (c *Credentials) awaited(f *flight, err error) {
	r := resultFailed
	if err == nil {
		r = f.result
	}
	switch {
	case err != nil:
	case r == resultUnset || r == resultFailed:
		// A flight that did not run (hold-off, Close) handed out the
		// token still held.
		r = resultMemory
	}
	if r == resultMemory {
		c.hit()
		return
	}
	c.stats.count(r)
}

// flightRec traces one refresh flight and measures it.
type flightRec struct {
	c       *Credentials
	span    trace.Span
	start   time.Time
	trigger string

	waitFrom time.Time // the wait for another holder's lease that runs, if any
	waited   bool
	adopted  bool
	took     bool // this flight called the token endpoint under its lease
}

// beginFlight starts the flight's span; stale is the token it replaces.
func (c *Credentials) beginFlight(stale *Token) *flightRec {
	trigger := "expired"
	switch {
	case stale == forceRefresh:
		trigger = "forced"
	case stale.Valid(c.cfg.Now()):
		trigger = "renew_ahead"
		c.tel.renewals.Add(context.Background(), 1, c.metricAttrs)
	}
	_, span := c.tel.tracer.Start(context.Background(), spanFlight, trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(c.tel.attrs(c.cfg.Profile, attrTrigger.String(trigger))...))
	return &flightRec{c: c, span: span, start: time.Now(), trigger: trigger}
}

// context returns parent carrying the flight's span, for its children and
// for the store's and an instrumented HTTP client's spans.
func (f *flightRec) context(parent context.Context) context.Context {
	return trace.ContextWithSpan(parent, f.span)
}

// child starts a child span of the flight; done ends it with err.
func (f *flightRec) child(ctx context.Context, name string) (context.Context, func(error)) {
	return f.c.child(ctx, name)
}

// child starts a span under the one in ctx (the flight's); done ends it
// with err.
func (c *Credentials) child(ctx context.Context, name string) (context.Context, func(error)) {
	ctx, span := c.tel.tracer.Start(ctx, name)
	return ctx, func(err error) {
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			c.recordError(span, err)
		}
		span.End()
	}
}

// waiting notes that the flight waits for owner's lease, for at most d.
func (f *flightRec) waiting(owner string, d time.Duration) {
	if f.waitFrom.IsZero() {
		f.waitFrom = time.Now()
	}
	f.waited = true
	f.span.AddEvent(eventWait, trace.WithAttributes(attribute.String("tokencache.lease.owner", owner),
		attribute.Float64("tokencache.lease.wait_max", d.Seconds())))
}

// waitOver records the wait that ran, if any.
func (f *flightRec) waitOver() {
	if !f.waitFrom.IsZero() {
		f.c.tel.leaseWait.Record(context.Background(), time.Since(f.waitFrom).Seconds(), f.c.metricAttrs)
		f.waitFrom = time.Time{}
	}
}

// adopt notes a token read from the store.
func (f *flightRec) adopt() {
	f.waitOver()
	f.adopted = true
	f.span.AddEvent(eventAdopt)
}

// leaseTaken notes that the flight took the lease over prev, the record
// it read: a lease someone else held there was taken over.
func (f *flightRec) leaseTaken(prev *storage.Record) {
	f.waitOver()
	f.took = true
	if prev == nil || prev.Lease == nil || prev.Lease.Owner == f.c.owner {
		return
	}
	f.c.tel.takeovers.Add(context.Background(), 1, f.c.metricAttrs)
	f.span.AddEvent(eventTakeover, trace.WithAttributes(attribute.String("tokencache.lease.owner", prev.Lease.Owner)))
	f.c.cfg.Logger.Warn("took over a refresh lease that ran out: its holder did not finish", "profile", f.c.cfg.Profile,
		"owner", prev.Lease.Owner)
}

// end closes the flight and returns how it ended.
func (f *flightRec) end(err error) result {
	f.waitOver()
	r := resultRefreshed
	switch {
	case err != nil:
		r = resultFailed
		f.c.recordError(f.span, err)
	case f.adopted && f.waited:
		r = resultWaited
	case f.adopted:
		r = resultAdopted
	case !f.took:
		r = resultAdopted
	}
	f.span.SetAttributes(attrResult.String(r.String()))
	f.span.End()
	f.c.tel.refresh.Record(context.Background(), time.Since(f.start).Seconds(),
		metric.WithAttributes(f.c.tel.attrs(f.c.cfg.Profile, attrResult.String(r.String()), attrTrigger.String(f.trigger))...))
	return r
}

// endpointCall starts the span of a token endpoint call with rec's
// credentials; done records it and its duration.
func (c *Credentials) endpointCall(ctx context.Context, rec *storage.Record) (context.Context, func(error)) {
	c.remember(rec)
	start := time.Now()
	host, port := serverOf(rec.TokenURL)
	base := []attribute.KeyValue{attrMethod.String("POST"), attrServer.String(host)}
	if port > 0 {
		base = append(base, attrPort.Int(port))
	}
	ctx, span := c.tel.tracer.Start(ctx, spanEndpoint, trace.WithAttributes(base...))
	return ctx, func(err error) {
		kv := endpointAttrs(base, err)
		span.SetAttributes(kv[len(base):]...)
		if err != nil {
			c.recordError(span, err)
		}
		span.End()
		c.tel.endpoint.Record(context.Background(), time.Since(start).Seconds(),
			metric.WithAttributes(c.tel.attrs(c.cfg.Profile, kv...)...))
	}
}

// endpointAttrs adds the outcome of a token endpoint call to base: the
// HTTP status, the OAuth error code bounded to RFC 6749's, error.type.
func endpointAttrs(base []attribute.KeyValue, err error) []attribute.KeyValue {
	kv := append([]attribute.KeyValue(nil), base...)
	if err == nil {
		return append(kv, attrStatus.Int(200))
	}
	var ee *EndpointError
	if errors.As(err, &ee) {
		if ee.StatusCode != 0 {
			kv = append(kv, attrStatus.Int(ee.StatusCode))
		}
		if ee.Code != "" {
			kv = append(kv, attrOAuthError.String(oauthCode(ee.Code)))
		}
	}
	return append(kv, attrErrorType.String(errorType(err)))
}

// oauthCode bounds an OAuth error code to those RFC 6749 defines (and
// RFC 6750's invalid_token), so a server cannot grow the attribute's
// cardinality.
func oauthCode(code string) string {
	switch code {
	case "invalid_request", "invalid_client", "invalid_grant", "unauthorized_client", "unsupported_grant_type",
		"invalid_scope", "access_denied", "unsupported_response_type", "server_error", "temporarily_unavailable",
		"invalid_token":
		return code
	}
	return "other"
}

// errorType classifies err for error.type: a short, bounded name.
func errorType(err error) string {
	var ee *EndpointError
	switch {
	case errors.Is(err, ErrReauthRequired):
		return "reauth_required"
	case errors.Is(err, ErrInvalidGrant):
		return "invalid_grant"
	case errors.Is(err, ErrInvalidClient):
		return "invalid_client"
	case errors.Is(err, ErrNotTokenEndpoint):
		return "not_token_endpoint"
	case errors.Is(err, ErrMalformedResponse):
		return "malformed_response"
	case errors.Is(err, ErrUnpersisted):
		return "unpersisted"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.As(err, &ee) && ee.StatusCode != 0:
		return strconv.Itoa(ee.StatusCode)
	case errors.As(err, &ee):
		return "unreachable"
	}
	if t := storage.ErrorType(err); t != "" {
		return t
	}
	var pe *PartialCredentialsError
	if errors.As(err, &pe) {
		return "partial_credentials"
	}
	return "_OTHER"
}

// recordError marks span failed with err's type and message. Errors of
// this module carry no secret (URLs pass secret.RedactURL, tokens never
// enter them); the profile's own secrets are masked anyway, in case a
// server echoed one in its error description.
func (c *Credentials) recordError(span trace.Span, err error) {
	msg := c.scrub(err.Error())
	span.SetStatus(codes.Error, msg)
	span.SetAttributes(attrErrorType.String(errorType(err)))
	span.AddEvent(eventException, trace.WithAttributes(
		attribute.String("exception.type", errorType(err)), attribute.String("exception.message", msg)))
}

// scrub masks the secrets this Credentials knows of in s, and bounds its
// length.
func (c *Credentials) scrub(s string) string {
	c.mu.Lock()
	secrets := c.known
	c.mu.Unlock()
	for _, v := range secrets {
		if len(v) >= 4 {
			s = strings.ReplaceAll(s, v, "*****")
		}
	}
	if len(s) > 512 {
		s = s[:512] + "..."
	}
	return s
}

// remember notes the secrets of rec that scrub masks.
func (c *Credentials) remember(rec *storage.Record) {
	if rec == nil {
		return
	}
	c.mu.Lock()
	c.known = [3]string{rec.AccessToken.Reveal(), rec.RefreshToken.Reveal(), rec.ClientSecret.Reveal()}
	c.mu.Unlock()
}

// journalReplayed counts a recovery journal entry written to the store
// (err nil), dropped as superseded, left for another grant, or failed.
func (c *Credentials) journalReplayed(err error) {
	outcome := "written"
	switch {
	case err == nil:
	case errors.Is(err, errForeign):
		outcome = "foreign"
	case errors.Is(err, storage.ErrLineage):
		outcome = "superseded"
	default:
		outcome = "failed"
	}
	c.tel.journal.Add(context.Background(), 1, metric.WithAttributes(c.tel.attrs(c.cfg.Profile, attrOutcome.String(outcome))...))
}

// heldOff counts a hold-off set after a failure; pause is the endpoint's
// Retry-After, if it gave one.
func (c *Credentials) heldOff(pause time.Duration) {
	reason := "failure"
	if pause > 0 {
		reason = "retry_after"
	}
	c.tel.holdOffs.Add(context.Background(), 1, metric.WithAttributes(c.tel.attrs(c.cfg.Profile, attrReason.String(reason))...))
}

// serverOf returns the host and port of a token URL, for server.address
// and server.port; the path and query stay out of attributes.
func serverOf(raw string) (string, int) {
	u, err := url.Parse(raw)
	if err != nil {
		return "unknown", 0
	}
	host := u.Hostname()
	port, _ := strconv.Atoi(u.Port())
	if port == 0 {
		switch u.Scheme {
		case "https":
			port = 443
		case "http":
			port = 80
		}
	}
	if ip := net.ParseIP(host); ip != nil {
		host = ip.String()
	}
	return host, port
}
