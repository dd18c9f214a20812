package credentials

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/tokencache/tokencache/internal/httpsafe"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
)

// Config configures Credentials. The zero value of every field but Store
// is a sensible default.
type Config struct {
	// Store holds the profile. Required.
	Store *storage.Store
	// Profile names the record in the store; default "default".
	Profile string

	// HTTPClient calls the token endpoint; default: a client with a 30 s timeout.
	HTTPClient *http.Client
	// AuthStyle is how the client authenticates to an RFC 6749 endpoint.
	AuthStyle AuthStyle

	// Grant, when set, obtains new tokens instead of the refresh-token
	// grant: client credentials, a redemption service, a custom token
	// endpoint, anything that yields an access token. The protocol around
	// it (store first, one lease holder, shared result) is the same, and
	// the profile need not exist: the first token creates it. A refresh
	// token the Grant returns is stored (as the profile's successor);
	// one that should not be returns none.
	Grant Grant

	// ManualRefresh turns automatic refreshing off: Token hands out the
	// current token, from memory or the store, and fails with
	// ErrRefreshRequired when there is no valid one, instead of calling
	// the endpoint; nothing renews in the background. Only Refresh and
	// Rejected (so a Transport's retry after a 401) refresh. For callers
	// that decide themselves when a grant may be spent.
	ManualRefresh bool

	// Skew is how long before its expiry a token stops being handed out,
	// so that a request does not arrive with a token that just expired;
	// default 30 s.
	Skew time.Duration
	// RenewAhead is how long before expiry a background refresh starts
	// while the current token is still served; default 2 x Skew. It is
	// capped at half the remaining lifetime of a token, so short-lived
	// tokens are not renewed the moment they arrive.
	RenewAhead time.Duration
	// RenewSpread is the fraction of the renewal window (from RenewAhead
	// to Skew before expiry) over which renewals are spread: each token's
	// point in it comes from the token itself, so that every replica
	// agrees on it and tokens issued together (a batch import, a restart)
	// renew spread out instead of all at once, with a little of each
	// process's own randomness so that replicas do not race for one lease.
	// Default 0.5; negative means none. For a fleet whose endpoint must
	// not see bursts, make RenewAhead a good part of the token lifetime.
	RenewSpread float64
	// Rand returns the random fractions in [0, 1) that RenewSpread uses;
	// default math/rand/v2's Float64. Tests seed it.
	Rand func() float64
	// Limiter bounds the concurrent refreshes per token endpoint and
	// holds them all off when the endpoint answers 429 or 503 with
	// Retry-After. Share one between the Credentials of a process
	// (Profiles does); nil means no bound, and Retry-After paces only the
	// Credentials that received it.
	Limiter *EndpointLimiter
	// LeaseTTL bounds how long a refresher may hold the lease, and so how
	// long a crashed refresher delays the others; default 30 s.
	LeaseTTL time.Duration
	// RefreshTimeout bounds one token endpoint call; default LeaseTTL/3.
	RefreshTimeout time.Duration
	// StoreTimeout bounds one store write; default half of what LeaseTTL
	// leaves after RefreshTimeout. The lease must cover the endpoint call
	// and the write of its result: RefreshTimeout + StoreTimeout < LeaseTTL.
	StoreTimeout time.Duration
	// JournalDir holds the recovery journal: a rotated refresh token the
	// store did not take (an outage longer than the lease) is written
	// there, 0600, before the access token is handed out, and the next
	// Credentials for the same store and profile on this machine writes it
	// to the store. Default DefaultJournalDir(); "-" disables it. Only
	// stores opened by URL (storage.Open) are journalled: the URL tells a
	// later process which store an entry belongs to.
	JournalDir string
	// MinRejectInterval is how often at most a server's rejection of a
	// token (see Rejected) makes a refresh; default 30 s.
	MinRejectInterval time.Duration
	// PollInterval is how often a waiter re-reads a store that cannot
	// notify changes; default 100 ms.
	PollInterval time.Duration
	// MaxRetries is how many times one refresh retries a temporary
	// endpoint failure, with jittered exponential backoff; default 3.
	// Negative means no retries.
	MaxRetries int
	// RetryBackoff is the first backoff; default 100 ms.
	RetryBackoff time.Duration

	// Logger receives debug and warning events; nil means silent.
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time

	// MeterProvider and TracerProvider receive the metrics and spans
	// listed under Observability in the package documentation; nil means
	// the otel global providers, which record nothing until an SDK is
	// installed. When set they also instrument Store (Store.Instrument).
	MeterProvider  metric.MeterProvider
	TracerProvider trace.TracerProvider
	// ProfileAttribute adds the profile name (tokencache.profile) to every
	// metric and span. Off by default: a profile name may be a tenant id,
	// and every profile then makes its own time series.
	ProfileAttribute bool

	tel *telemetry // shared by the Credentials of one Profiles
}

func (c *Config) setDefaults() error {
	if c.Store == nil {
		return errors.New("credentials: Config.Store is required")
	}
	if c.Profile == "" {
		c.Profile = "default"
	}
	if err := storage.CheckKey(c.Profile); err != nil {
		return err
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if c.Skew == 0 {
		c.Skew = 30 * time.Second
	}
	if c.RenewAhead == 0 {
		c.RenewAhead = 2 * c.Skew
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = 30 * time.Second
	}
	switch {
	case c.RenewSpread == 0:
		c.RenewSpread = 0.5
	case c.RenewSpread < 0:
		c.RenewSpread = 0
	case c.RenewSpread > 1:
		c.RenewSpread = 1
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	if c.RefreshTimeout == 0 {
		c.RefreshTimeout = c.LeaseTTL / 3
	}
	if c.RefreshTimeout >= c.LeaseTTL {
		return fmt.Errorf("credentials: RefreshTimeout (%v) must be shorter than LeaseTTL (%v)", c.RefreshTimeout, c.LeaseTTL)
	}
	if c.StoreTimeout == 0 {
		c.StoreTimeout = (c.LeaseTTL - c.RefreshTimeout) / 2
	}
	if c.RefreshTimeout+c.StoreTimeout >= c.LeaseTTL {
		return fmt.Errorf("credentials: LeaseTTL (%v) must cover RefreshTimeout (%v) plus StoreTimeout (%v): the lease holder calls the endpoint and then writes the result",
			c.LeaseTTL, c.RefreshTimeout, c.StoreTimeout)
	}
	if c.JournalDir == "" {
		c.JournalDir = DefaultJournalDir()
	}
	if c.MinRejectInterval == 0 {
		c.MinRejectInterval = 30 * time.Second
	}
	if c.PollInterval == 0 {
		c.PollInterval = 100 * time.Millisecond
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = 3
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = 100 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Credentials hands out the access tokens of one profile. It is safe for
// concurrent use; create one per profile per process (Profiles does that
// for many) and Close it when done.
type Credentials struct {
	cfg      Config
	store    *storage.Store
	endpoint endpoint
	owner    string // this instance's lease owner id

	cur      atomic.Pointer[Token]
	renewing atomic.Bool // a flight runs: spares the cached path the lock
	// lastRejected is when a rejection last made a refresh (UnixNano).
	lastRejected atomic.Int64

	journal   journal
	cleartext sync.Once // warned about a plain-http token endpoint

	tel         *telemetry
	stats       *requestStats            // Token results, perhaps shared with other profiles
	hits        []paddedCount            // stats.hits, for the cached path
	metricAttrs metric.MeasurementOption // the profile, when its attribute is on

	mu      sync.Mutex
	flight  *flight
	deadRT  secret.Secret // refresh token the server rejected: do not retry it
	pending *pendingWrite // a rotated token the store has not taken yet
	// flushMu serializes flushPending: the background writer and a flight
	// must not both write the same pending record, or one that was slow
	// could put it back after the other wrote it and the flight spent it.
	flushMu  sync.Mutex
	flushing bool          // a background writer retries pending
	closed   bool          // Close was called: no new goroutines
	seen     leaseSighting // the other holder's lease we last waited for
	failures int           // consecutive temporary failures, for backoff
	holdOff  time.Time     // no new refresh before this, after failures
	lastErr  error
	known    [3]string // the profile's secrets, masked in recorded errors

	// stopFlush ends the background writer (see flushLoop); a flight's
	// stop is in its flight. Close calls them. Each runs under a context
	// of its own rather than one derived from a context the Credentials
	// keeps: a long-lived parent keeps the map of children it grew for
	// its first child, a quarter of what a cached profile costs.
	stopFlush context.CancelFunc
	wg        sync.WaitGroup
}

type leaseSighting struct {
	owner string
	until time.Time
	at    time.Time // our clock
}

type flight struct {
	stop   context.CancelFunc // cancels the flight's context (Close)
	done   chan struct{}
	tok    *Token
	err    error
	result result // set when the flight ran
}

// New returns Credentials for cfg.Profile in cfg.Store. It does no I/O:
// the first Token call reads the store.
func New(cfg Config) (*Credentials, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if name := cfg.Store.Name(); name != "" {
		cfg.Logger = cfg.Logger.With("store", name) // already redacted
	}
	tel := cfg.tel
	if tel == nil {
		tel = newTelemetry(&cfg)
		tel.owned = true
	}
	c := &Credentials{
		cfg:         cfg,
		store:       cfg.Store,
		endpoint:    endpoint{client: httpsafe.NoRedirects(cfg.HTTPClient), authStyle: cfg.AuthStyle},
		owner:       newOwnerID(),
		journal:     newJournal(cfg.JournalDir, cfg.Store.Name(), cfg.Profile),
		tel:         tel,
		stats:       tel.statsFor(),
		metricAttrs: metric.WithAttributes(tel.attrs(cfg.Profile)...),
	}
	c.hits = c.stats.hits
	tel.join(c)
	return c, nil
}

// String describes c without its secrets (a Grant's, say, which fmt would
// otherwise print from the unexported configuration).
func (c *Credentials) String() string {
	return fmt.Sprintf("credentials.Credentials{profile: %q, store: %q}", c.cfg.Profile, c.store.Name())
}

// Format prints String for every verb, %+v and %#v included.
func (c *Credentials) Format(f fmt.State, _ rune) { fmt.Fprint(f, c.String()) }

// LogValue keeps slog from walking the configuration.
func (c *Credentials) LogValue() slog.Value {
	return slog.GroupValue(slog.String("profile", c.cfg.Profile), slog.String("store", c.store.Name()))
}

// Profile returns the profile name.
func (c *Credentials) Profile() string { return c.cfg.Profile }

// Store returns the store the credentials live in.
func (c *Credentials) Store() *storage.Store { return c.store }

// Token returns a valid access token, refreshing it through the store's
// protocol when needed. The cached path takes no lock and allocates nothing.
func (c *Credentials) Token(ctx context.Context) (*Token, error) {
	now := c.cfg.Now()
	if t := c.cur.Load(); t != nil && now.Before(t.quietUntil) {
		c.hit()
		return t, nil
	}
	return c.tokenSlow(ctx, now)
}

// tokenSlow is Token for a token that is due for renewal, expired or
// missing.
func (c *Credentials) tokenSlow(ctx context.Context, now time.Time) (*Token, error) {
	if t := c.cur.Load(); t.Valid(now) {
		if t.dueForRenewal(now) && !c.renewing.Load() && !c.cfg.ManualRefresh {
			c.startFlight(t)
		}
		c.hit()
		return t, nil
	}
	if c.cfg.ManualRefresh {
		return c.stored(ctx)
	}
	return c.await(ctx, c.startFlight(c.cur.Load()))
}

// stored is Token without a refresh: the store's token if it is valid
// (another process refreshed), else ErrRefreshRequired.
func (c *Credentials) stored(ctx context.Context) (*Token, error) {
	rec, _, err := c.store.Load(ctx, c.cfg.Profile)
	if err != nil {
		return nil, fmt.Errorf("credentials: profile %q: %w", c.cfg.Profile, err)
	}
	now := c.cfg.Now()
	t := c.tokenFrom(rec, now)
	if !t.Valid(now) {
		return nil, fmt.Errorf("%w: profile %q", ErrRefreshRequired, c.cfg.Profile)
	}
	c.cur.Store(t)
	return t, nil
}

// Refresh replaces stale, a token the caller found not to work (say, a
// resource server answered 401), and returns its successor. If stale is no
// longer the current token, the current one is returned without a refresh,
// so many callers reporting the same token cause one refresh. A nil stale
// forces a refresh of whatever is current.
func (c *Credentials) Refresh(ctx context.Context, stale *Token) (*Token, error) {
	cur := c.cur.Load()
	if stale == nil {
		stale = forceRefresh
	} else if cur != stale && cur.Valid(c.cfg.Now()) {
		c.hit()
		return cur, nil
	}
	return c.await(ctx, c.startFlight(stale))
}

// Rejected reports that a server refused t, as a resource server's 401
// does, and returns the token to send instead: t's successor when t is
// still current (one refresh for any number of reports, as with Refresh),
// or the current token when t was already replaced. At most one such
// refresh happens per MinRejectInterval; within it t itself comes back: a
// server that refuses every token (a wrong audience, a misconfigured
// proxy) must not cost a refresh, and a rotation of the refresh token, per
// request.
func (c *Credentials) Rejected(ctx context.Context, t *Token) (*Token, error) {
	now := c.cfg.Now()
	cur := c.cur.Load()
	if cur != t && cur.Valid(now) {
		c.hit()
		return cur, nil
	}
	last := c.lastRejected.Load()
	if t.Valid(now) && now.UnixNano()-last < int64(c.cfg.MinRejectInterval) {
		// A refresh for a rejection ran lately: join it if it still runs,
		// else keep what is current.
		c.mu.Lock()
		f := c.flight
		c.mu.Unlock()
		if f != nil {
			return c.await(ctx, f)
		}
		c.hit()
		if cur := c.cur.Load(); cur != nil {
			return cur, nil
		}
		return t, nil
	}
	// Reports racing here all join the one flight Refresh starts.
	c.lastRejected.CompareAndSwap(last, now.UnixNano())
	return c.Refresh(ctx, t)
}

// forceRefresh, as the stale token of a flight, makes it replace whatever
// token the store holds when the flight starts.
var forceRefresh = &Token{}

func (c *Credentials) await(ctx context.Context, f *flight) (*Token, error) {
	select {
	case <-f.done:
		c.awaited(f, f.err)
		return f.tok, f.err
	case <-ctx.Done():
		c.awaited(f, ctx.Err())
		return nil, ctx.Err()
	}
}

// startFlight joins the running flight or starts one that replaces stale.
// The flight runs on its own context: one waiter giving up must not cancel
// the refresh the others wait for.
func (c *Credentials) startFlight(stale *Token) *flight {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.flight != nil {
		return c.flight
	}
	f := &flight{done: make(chan struct{})}
	if c.closed {
		// Close is waiting for the flights it knows of; starting another
		// now would race with that wait.
		if stale.Valid(c.cfg.Now()) {
			f.tok = stale
		} else {
			f.err = driver.Wrap(storage.ErrClosed, fmt.Sprintf("credentials: profile %q", c.cfg.Profile), nil)
		}
		close(f.done)
		return f
	}
	if now := c.cfg.Now(); now.Before(c.holdOff) {
		// Recent failures: do not hammer the endpoint. A token still valid
		// is served meanwhile; without one, fail fast. The hold-off is
		// short and jittered.
		if stale.Valid(now) {
			f.tok = stale
		} else {
			f.err = c.lastErr
		}
		close(f.done)
		return f
	}
	c.flight = f
	c.renewing.Store(true)
	c.wg.Add(1)
	fctx, stop := context.WithCancel(context.Background())
	f.stop = stop
	go func() {
		defer c.wg.Done()
		defer stop()
		ft := c.beginFlight(stale)
		f.tok, f.err = c.refresh(fctx, ft, stale)
		f.result = ft.end(f.err)
		c.mu.Lock()
		c.flight = nil
		c.renewing.Store(false)
		c.mu.Unlock()
		close(f.done)
	}()
	return f
}

// Flush writes a rotated refresh token that a store outage held back, if
// any, bounded by ctx: this process's, then those the recovery journal
// holds for this store and profile (a process on this machine that exited
// before the store took them), under the same rules as a refresh flight.
// It returns nil when there is none left, else an *UnpersistedError that
// says where the token is kept.
func (c *Credentials) Flush(ctx context.Context) error {
	if err := c.flushPending(ctx); err != nil {
		return err
	}
	return c.replayJournal(ctx)
}

// Close stops background work. Tokens already handed out stay valid. A
// rotated refresh token the store has not taken yet gets one last write
// (bounded by a few StoreTimeouts: the wait for its journal entry's lock,
// the write, the lease cleared); if that fails too Close returns an
// *UnpersistedError naming the recovery journal entry that keeps it. The
// Store stays open: its owner closes it, after this.
func (c *Credentials) Close() error {
	c.mu.Lock()
	c.closed = true
	var stops []context.CancelFunc
	if c.flight != nil && c.flight.stop != nil {
		stops = append(stops, c.flight.stop)
	}
	if c.stopFlush != nil {
		stops = append(stops, c.stopFlush)
	}
	c.mu.Unlock()
	for _, stop := range stops {
		stop()
	}
	c.wg.Wait()
	defer c.tel.leave(c)
	return c.flushPending(context.Background())
}
