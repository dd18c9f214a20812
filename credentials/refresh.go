package credentials

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/tokencache/tokencache/internal/backoff"
	"github.com/tokencache/tokencache/storage"
)

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
			wctx, wcancel := context.WithTimeout(ctx, end.Sub(now)+backoff.Jitter(c.cfg.PollInterval))
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
		t, again, err := c.refreshUnderLease(ctx, rec, leaseRev, stale, &attempt)
		if again {
			continue
		}
		return t, err
	}
}

// refreshUnderLease calls the endpoint while holding the lease taken at
// leaseRev, and stores what it gets. again means: go back and read the
// store, the situation changed or a temporary failure is worth a retry.
func (c *Credentials) refreshUnderLease(ctx context.Context, rec *storage.Record, leaseRev storage.Revision, stale *Token, attempt *int) (t *Token, again bool, err error) {
	log := c.cfg.Logger.With("profile", c.cfg.Profile)
	used := rec.RefreshToken
	// From here on the server may rotate the refresh token: Close must not
	// cut the call or the write that keeps its answer, so both run
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
				return nil, true, nil
			}
			log.Warn("grant rejected: re-authorization required", "code", ee.Code)
			err = fmt.Errorf("%w: profile %q: %w", ErrReauthRequired, c.cfg.Profile, err)
			if c.cfg.Grant != nil || used == "" {
				// No refresh token to mark dead: hold off instead, so
				// callers do not hammer the endpoint with a bad grant.
				return nil, false, c.failed(err, stale)
			}
			c.mu.Lock()
			c.deadRT = used
			c.mu.Unlock()
			return nil, false, err
		}
		if temporary(err) && *attempt < c.cfg.MaxRetries && ctx.Err() == nil {
			d := backoff.Exponential(c.cfg.RetryBackoff, *attempt)
			log.Debug("temporary token endpoint failure; backing off", "err", err, "backoff", d)
			*attempt++
			if backoff.Sleep(ctx, d) == nil {
				return nil, true, nil
			}
		}
		return nil, false, c.failed(err, stale)
	}

	rec.AccessToken, rec.TokenType, rec.Expiry = got.AccessToken, got.TokenType, got.Expiry
	if got.RefreshToken != "" {
		rec.RefreshToken = got.RefreshToken
	}
	rec.Lease = nil
	// The rotated refresh token reaches the store before the new access
	// token reaches a caller; if the store is down it stays in memory and
	// is written as soon as the store answers again.
	wctx, wcancel := context.WithTimeout(keep, c.cfg.RefreshTimeout)
	err = c.persist(wctx, rec, leaseRev, used)
	wcancel()
	if err != nil && !errors.Is(err, errLeaseLost) {
		c.keepPending(rec, err)
	}
	t = c.tokenFrom(rec, c.cfg.Now())
	c.cur.Store(t)
	c.succeeded()
	log.Debug("token refreshed", "expiry", t.Expiry, "rotated", got.RefreshToken != "")
	return t, false, nil
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
	c.holdOff = c.cfg.Now().Add(backoff.Exponential(c.cfg.RetryBackoff, c.failures))
	if stale.Valid(c.cfg.Now()) {
		c.cfg.Logger.Warn("background refresh failed; still serving the current token", "profile", c.cfg.Profile, "err", err)
	}
	return err
}

func newOwnerID() string {
	b := make([]byte, 8)
	crand.Read(b)
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b))
}
