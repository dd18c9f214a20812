// Package credentials keeps the OAuth 2.0 credentials of one profile in a
// shared storage.Store and hands out access tokens, so that every process
// and replica sharing the store reuses one access token and exactly one of
// them refreshes it per expiry.
//
// The refresh protocol (see DESIGN.md, "The refresh protocol"):
//
//  1. The token held in memory, while valid, is returned without a lock.
//  2. Otherwise one goroutine per Credentials refreshes (a flight) and the
//     others wait for it, each bounded by its own context.
//  3. The flight reads the store first: a valid token another process
//     stored is adopted.
//  4. A live lease held by someone else means a refresh is in progress: the
//     flight waits for the record to change, at most until the lease ends.
//  5. Otherwise it takes the lease with a conditional put on the revision it
//     read, so the refresh token in hand is the current one.
//  6. It calls the token endpoint with a timeout shorter than the lease,
//     writes the new access token and the rotated refresh token with the
//     lease cleared, and only then hands the token out.
//
// Before a token expires a background flight renews it while callers keep
// getting the current one, so callers rarely wait.
package credentials

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
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
	// grant: client credentials, a custom token endpoint, anything that
	// yields an access token. The protocol around it (store first, one
	// lease holder, shared result) is the same.
	Grant Grant

	// DeveloperToken, when set, selects pancloud's developer-token flow:
	// access tokens are redeemed from DeveloperTokenProvider and only the
	// access token is stored.
	DeveloperToken         secret.Secret
	DeveloperTokenProvider string

	// Skew is how long before its expiry a token stops being handed out,
	// so that a request does not arrive with a token that just expired;
	// default 30 s.
	Skew time.Duration
	// RenewAhead is how long before expiry a background refresh starts
	// while the current token is still served; default 2 x Skew. It is
	// capped at half the remaining lifetime of a token, so short-lived
	// tokens are not renewed the moment they arrive.
	RenewAhead time.Duration
	// LeaseTTL bounds how long a refresher may hold the lease, and so how
	// long a crashed refresher delays the others; default 30 s.
	LeaseTTL time.Duration
	// RefreshTimeout bounds one token endpoint call; it must be shorter than
	// LeaseTTL so that a lease never lapses mid-call; default LeaseTTL/3.
	RefreshTimeout time.Duration
	// MaxClockSkew is the largest clock difference between any two
	// processes sharing the store that leases tolerate; default 10 minutes
	// (every clock within 5 minutes of the truth). See leaseEnd.
	MaxClockSkew time.Duration
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
	if c.RefreshTimeout == 0 {
		c.RefreshTimeout = c.LeaseTTL / 3
	}
	if c.RefreshTimeout >= c.LeaseTTL {
		return fmt.Errorf("credentials: RefreshTimeout (%v) must be shorter than LeaseTTL (%v)", c.RefreshTimeout, c.LeaseTTL)
	}
	if c.MaxClockSkew == 0 {
		c.MaxClockSkew = 10 * time.Minute
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

	mu       sync.Mutex
	flight   *flight
	deadRT   secret.Secret // refresh token the server rejected: do not retry it
	pending  *storage.Record
	seen     leaseSighting // the other holder's lease we last waited for
	failures int           // consecutive temporary failures, for backoff
	holdOff  time.Time     // no new refresh before this, after failures
	lastErr  error

	root   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type leaseSighting struct {
	owner string
	until time.Time
	at    time.Time // our clock
}

type flight struct {
	done chan struct{}
	tok  *Token
	err  error
}

// New returns Credentials for cfg.Profile in cfg.Store. It does no I/O:
// the first Token call reads the store.
func New(cfg Config) (*Credentials, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	root, cancel := context.WithCancel(context.Background())
	return &Credentials{
		cfg:      cfg,
		store:    cfg.Store,
		endpoint: endpoint{client: cfg.HTTPClient, authStyle: cfg.AuthStyle},
		owner:    newOwnerID(),
		root:     root,
		cancel:   cancel,
	}, nil
}

// Profile returns the profile name.
func (c *Credentials) Profile() string { return c.cfg.Profile }

// Store returns the store the credentials live in.
func (c *Credentials) Store() *storage.Store { return c.store }

// Token returns a valid access token, refreshing it through the store's
// protocol when needed. The cached path takes no lock and allocates nothing.
func (c *Credentials) Token(ctx context.Context) (*Token, error) {
	now := c.cfg.Now()
	if t := c.cur.Load(); t.Valid(now) {
		if t.dueForRenewal(now) && !c.renewing.Load() {
			c.startFlight(t)
		}
		return t, nil
	}
	return c.await(ctx, c.startFlight(c.cur.Load()))
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
		return cur, nil
	}
	return c.await(ctx, c.startFlight(stale))
}

// forceRefresh, as the stale token of a flight, makes it replace whatever
// token the store holds when the flight starts.
var forceRefresh = &Token{}

func (c *Credentials) await(ctx context.Context, f *flight) (*Token, error) {
	select {
	case <-f.done:
		return f.tok, f.err
	case <-ctx.Done():
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
	go func() {
		defer c.wg.Done()
		f.tok, f.err = c.refresh(stale)
		c.mu.Lock()
		c.flight = nil
		c.renewing.Store(false)
		c.mu.Unlock()
		close(f.done)
	}()
	return f
}

// errLeaseLost means the record changed under our lease (an operator edit,
// or our lease lapsed and another refresher went ahead).
var errLeaseLost = errors.New("credentials: lease lost")

// refresh runs one flight: it ends with a token valid now that is not
// stale, or an error.
func (c *Credentials) refresh(stale *Token) (*Token, error) {
	ctx, cancel := context.WithTimeout(c.root, 2*c.cfg.LeaseTTL+time.Duration(c.cfg.MaxRetries+2)*c.cfg.RefreshTimeout)
	defer cancel()
	log := c.cfg.Logger.With("profile", c.cfg.Profile)
	attempt := 0
	for {
		if err := c.flushPending(ctx); err != nil {
			return nil, err
		}
		rec, rev, err := c.store.Load(ctx, c.cfg.Profile)
		if errors.Is(err, storage.ErrNotFound) && c.cfg.Grant != nil {
			// A grant needs nothing stored to start from (client
			// credentials): the lease put creates the profile.
			rec, rev, err = &storage.Record{Profile: c.cfg.Profile}, "", nil
		}
		if err != nil {
			return nil, fmt.Errorf("credentials: profile %q: %w", c.cfg.Profile, err)
		}
		now := c.cfg.Now()
		if stale == forceRefresh {
			stale = c.tokenFrom(rec, now)
			if stale == nil {
				stale = forceRefresh
			}
		}
		// Check the store first: another process may have refreshed.
		if t := c.tokenFrom(rec, now); t.Valid(now) && (stale == nil || t.AccessToken != stale.AccessToken) {
			c.cur.Store(t)
			c.succeeded()
			log.Debug("adopted token from store", "expiry", t.Expiry)
			return t, nil
		}
		if err := c.refreshable(rec); err != nil {
			return nil, err
		}
		if end := c.leaseEnd(rec.Lease, now); now.Before(end) {
			// Someone is refreshing: wait for their write, at most until
			// their lease ends (then it is theirs no more and we take over).
			log.Debug("waiting for lease holder", "owner", rec.Lease.Owner, "for", end.Sub(now))
			wctx, wcancel := context.WithTimeout(ctx, end.Sub(now)+jitter(c.cfg.PollInterval))
			err := c.store.Wait(wctx, c.cfg.Profile, rev, c.cfg.PollInterval)
			wcancel()
			if err != nil && ctx.Err() != nil {
				return nil, fmt.Errorf("credentials: profile %q: waiting for another refresher: %w", c.cfg.Profile, ctx.Err())
			}
			continue
		}
		rec.Lease = &storage.Lease{Owner: c.owner, Until: now.Add(c.cfg.LeaseTTL)}
		leaseRev, err := c.store.Put(ctx, rec, storage.IfMatch(rev))
		if errors.Is(err, storage.ErrConflict) {
			continue // someone moved first: read again
		}
		if err != nil {
			return nil, fmt.Errorf("credentials: profile %q: taking the refresh lease: %w", c.cfg.Profile, err)
		}
		log.Debug("lease taken, calling token endpoint", "attempt", attempt)

		used := rec.RefreshToken
		// From here on the server may rotate the refresh token: Close must
		// not cut the call or the write that keeps its answer, so both run
		// detached from the flight's cancellation, bounded by their own
		// timeouts (which the lease outlives).
		keep := context.WithoutCancel(ctx)
		rctx, rcancel := context.WithTimeout(keep, c.cfg.RefreshTimeout)
		sent := c.cfg.Now()
		got, err := c.callEndpoint(rctx, rec, sent)
		rcancel()
		if err != nil {
			c.releaseLease(ctx, rec, leaseRev)
			var ee *EndpointError
			if errors.As(err, &ee) && (ee.Code == "invalid_grant" || ee.Code == "invalid_token") {
				// Re-check before reporting: a refresher whose lease lapsed
				// may have rotated the token under us.
				if cur, _, lerr := c.store.Load(ctx, c.cfg.Profile); lerr == nil && cur.RefreshToken != used {
					continue
				}
				log.Warn("grant rejected: re-authorization required", "code", ee.Code)
				err = fmt.Errorf("%w: profile %q: %w", ErrReauthRequired, c.cfg.Profile, err)
				if c.cfg.Grant != nil || used == "" {
					// No refresh token to mark dead: hold off instead, so
					// callers do not hammer the endpoint with a bad grant.
					return nil, c.failed(err, stale)
				}
				c.mu.Lock()
				c.deadRT = used
				c.mu.Unlock()
				return nil, err
			}
			if temporary(err) && attempt < c.cfg.MaxRetries && ctx.Err() == nil {
				d := backoff(c.cfg.RetryBackoff, attempt)
				log.Debug("temporary token endpoint failure; backing off", "err", err, "backoff", d)
				attempt++
				if sleepCtx(ctx, d) == nil {
					continue
				}
			}
			return nil, c.failed(err, stale)
		}

		rec.AccessToken, rec.TokenType, rec.Expiry = got.AccessToken, got.TokenType, got.Expiry
		if got.RefreshToken != "" {
			rec.RefreshToken = got.RefreshToken
		}
		rec.Lease = nil
		// The rotated refresh token reaches the store before the new access
		// token reaches a caller; if the store is down it stays in memory
		// and is written as soon as the store answers again.
		wctx, wcancel := context.WithTimeout(keep, c.cfg.RefreshTimeout)
		err = c.persist(wctx, rec, leaseRev, used)
		wcancel()
		if err != nil {
			if !errors.Is(err, errLeaseLost) {
				c.keepPending(rec, err)
			}
		}
		t := c.tokenFrom(rec, c.cfg.Now())
		c.cur.Store(t)
		c.succeeded()
		log.Debug("token refreshed", "expiry", t.Expiry, "rotated", got.RefreshToken != "")
		return t, nil
	}
}

// leaseEnd returns when, on this process's clock, the lease l stops
// excluding us; the zero time when it does not (none, ours, or abandoned).
//
// Clocks differ between machines, so the holder's Until cannot be compared
// with our clock: a holder whose clock runs 5 minutes slow writes a lease
// that looks expired on arrival, and taking it over would spend the refresh
// token twice. Instead a lease counts from when we first saw it and lasts
// our LeaseTTL (the holder's refresh timeout is shorter, and it took the
// lease before we saw it). Until serves only to recognise a lease abandoned
// long ago, beyond any skew we tolerate.
func (c *Credentials) leaseEnd(l *storage.Lease, now time.Time) time.Time {
	if l == nil || l.Owner == c.owner || now.After(l.Until.Add(c.cfg.MaxClockSkew)) {
		return time.Time{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen.owner != l.Owner || !c.seen.until.Equal(l.Until) {
		c.seen = leaseSighting{owner: l.Owner, until: l.Until, at: now}
	}
	return c.seen.at.Add(c.cfg.LeaseTTL)
}

// refreshable checks that rec has what a refresh needs.
func (c *Credentials) refreshable(rec *storage.Record) error {
	if c.cfg.DeveloperToken != "" || c.cfg.Grant != nil {
		return nil
	}
	var missing []string
	if rec.ClientID == "" {
		missing = append(missing, "client_id")
	}
	if rec.ClientSecret == "" {
		missing = append(missing, "client_secret")
	}
	if rec.RefreshToken == "" {
		missing = append(missing, "refresh_token")
	}
	if rec.TokenURL == "" {
		missing = append(missing, "token_url")
	}
	if len(missing) > 0 {
		return &PartialCredentialsError{Profile: c.cfg.Profile, Missing: missing}
	}
	c.mu.Lock()
	dead := c.deadRT
	c.mu.Unlock()
	if dead != "" && rec.RefreshToken == dead {
		return fmt.Errorf("%w: profile %q: the stored refresh token was rejected by the server", ErrReauthRequired, c.cfg.Profile)
	}
	return nil
}

func (c *Credentials) callEndpoint(ctx context.Context, rec *storage.Record, sent time.Time) (*Tokens, error) {
	var tr *tokenResponse
	var err error
	switch {
	case c.cfg.Grant != nil:
		return c.cfg.Grant.Obtain(ctx, rec)
	case c.cfg.DeveloperToken != "":
		tr, err = c.endpoint.postJSON(ctx, c.cfg.DeveloperTokenProvider, struct{}{}, c.cfg.DeveloperToken)
	default:
		tr, err = c.endpoint.refreshGrant(ctx, rec)
	}
	if err != nil {
		return nil, err
	}
	return tr.result(sent)
}

// persist writes the refreshed record over the lease revision. If the
// record changed meanwhile it merges: our tokens win only while the stored
// refresh token is still the one we spent.
func (c *Credentials) persist(ctx context.Context, rec *storage.Record, leaseRev storage.Revision, used secret.Secret) error {
	_, err := c.store.Put(ctx, rec, storage.IfMatch(leaseRev))
	if !errors.Is(err, storage.ErrConflict) {
		return err
	}
	_, _, err = c.store.Update(ctx, c.cfg.Profile, func(cur *storage.Record) error {
		if cur.RefreshToken != used && cur.RefreshToken != rec.RefreshToken {
			return errLeaseLost
		}
		cur.AccessToken, cur.TokenType, cur.Expiry, cur.RefreshToken = rec.AccessToken, rec.TokenType, rec.Expiry, rec.RefreshToken
		if cur.Lease != nil && cur.Lease.Owner == c.owner {
			cur.Lease = nil
		}
		return nil
	})
	if errors.Is(err, errLeaseLost) {
		c.cfg.Logger.Warn("another refresher replaced the refresh token while we held the lease; keeping theirs",
			"profile", c.cfg.Profile)
	}
	return err
}

// keepPending holds a refreshed record the store did not take and retries
// writing it in the background until it succeeds or Close is called.
func (c *Credentials) keepPending(rec *storage.Record, cause error) {
	c.cfg.Logger.Warn("store unavailable: keeping the rotated refresh token in memory until it can be written",
		"profile", c.cfg.Profile, "err", cause)
	c.mu.Lock()
	c.pending = rec
	c.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for attempt := 0; c.root.Err() == nil; attempt++ {
			if c.flushPending(c.root) == nil {
				return
			}
			sleepCtx(c.root, backoff(c.cfg.RetryBackoff, min(attempt, 6)))
		}
	}()
}

// flushPending writes a record held back by a store outage, if any. It
// returns an error only while the record could not be written.
func (c *Credentials) flushPending(ctx context.Context) error {
	c.mu.Lock()
	rec := c.pending
	c.mu.Unlock()
	if rec == nil {
		return nil
	}
	_, _, err := c.store.Update(ctx, c.cfg.Profile, func(cur *storage.Record) error {
		if cur.ClientID == "" && cur.RefreshToken == "" {
			// The store lost the whole profile meanwhile (a server that
			// restarted empty, a cache that evicted it): restore all of it.
			*cur = *rec.Clone()
		}
		cur.AccessToken, cur.TokenType, cur.Expiry, cur.RefreshToken = rec.AccessToken, rec.TokenType, rec.Expiry, rec.RefreshToken
		if cur.Lease != nil && cur.Lease.Owner == c.owner {
			cur.Lease = nil
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("credentials: profile %q: writing the rotated refresh token: %w", c.cfg.Profile, err)
	}
	c.mu.Lock()
	if c.pending == rec {
		c.pending = nil
	}
	c.mu.Unlock()
	c.cfg.Logger.Info("rotated refresh token written after store outage", "profile", c.cfg.Profile)
	return nil
}

// releaseLease clears our lease after a failed refresh so that another
// process need not wait for it to lapse. Losing the race is fine.
func (c *Credentials) releaseLease(ctx context.Context, rec *storage.Record, leaseRev storage.Revision) {
	rec.Lease = nil
	if _, err := c.store.Put(ctx, rec, storage.IfMatch(leaseRev)); err != nil && !errors.Is(err, storage.ErrConflict) {
		c.cfg.Logger.Debug("could not release lease; it will lapse", "profile", c.cfg.Profile, "err", err)
	}
}

func (c *Credentials) tokenFrom(rec *storage.Record, now time.Time) *Token {
	if rec.AccessToken == "" {
		return nil
	}
	if cur := c.cur.Load(); cur != nil && cur.AccessToken == rec.AccessToken {
		return cur
	}
	expiry := rec.Expiry
	if expiry.IsZero() {
		expiry, _ = JWTExpiry(rec.AccessToken.Reveal())
	}
	ahead := c.cfg.RenewAhead
	if !expiry.IsZero() {
		ahead = min(ahead, expiry.Sub(now)/2)
	}
	return newToken(rec.AccessToken, rec.TokenType, expiry, c.cfg.Skew, ahead)
}

func (c *Credentials) succeeded() {
	c.mu.Lock()
	c.failures, c.holdOff, c.lastErr = 0, time.Time{}, nil
	c.mu.Unlock()
}

// failed records a temporary failure and sets a jittered hold-off before
// the next attempt.
func (c *Credentials) failed(err error, stale *Token) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failures++
	c.lastErr = err
	c.holdOff = c.cfg.Now().Add(backoff(c.cfg.RetryBackoff, min(c.failures, 8)))
	if stale.Valid(c.cfg.Now()) {
		c.cfg.Logger.Warn("background refresh failed; still serving the current token", "profile", c.cfg.Profile, "err", err)
	}
	return err
}

// Close stops background work. Tokens already handed out stay valid.
func (c *Credentials) Close() error {
	c.cancel()
	c.wg.Wait()
	return nil
}

// backoff is exponential with full jitter, capped at 64 x base.
func backoff(base time.Duration, attempt int) time.Duration {
	d := base << min(attempt, 6)
	return d/2 + jitter(d/2)
}

func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(d)))
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func newOwnerID() string {
	b := make([]byte, 8)
	crand.Read(b)
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b))
}
