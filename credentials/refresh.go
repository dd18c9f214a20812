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
	"github.com/tokencache/tokencache/internal/httpsafe"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
)

// refresh runs one flight: it ends with a token valid now that is not
// stale, or an error.
func (c *Credentials) refresh(fctx context.Context, ft *flightRec, stale *Token) (*Token, error) {
	ctx, cancel := context.WithTimeout(ft.context(fctx), 2*c.cfg.LeaseTTL+time.Duration(c.cfg.MaxRetries+2)*c.cfg.RefreshTimeout)
	defer cancel()
	log := c.cfg.Logger.With("profile", c.cfg.Profile)
	var tries tries
	conflicts := 0
	var slot func() // held from the limiter until the flight ends
	defer func() {
		if slot != nil {
			slot()
		}
	}()
	for {
		// A rotated token this process, or another of this machine, could
		// not store goes in first, and at once: refreshing with the stored
		// one would spend a token the server has already rotated, and
		// replicas elsewhere will, once the lease of the process that
		// journalled it lapses. Should that fail (the store is down, or
		// another process holds the entry), a valid stored token may
		// still be adopted, but nothing is refreshed.
		settleErr := c.settle(ctx)
		sctx, done := ft.child(ctx, spanStoreRead)
		rec, rev, err := c.store.Load(sctx, c.cfg.Profile)
		done(err)
		if errors.Is(err, storage.ErrNotFound) && c.cfg.Grant != nil {
			// A grant needs nothing stored to start from (client
			// credentials, a redemption service): the lease put creates
			// the profile.
			rec, rev, err = nil, "", nil
		}
		if err != nil {
			// While the store cannot be read, a lease holder cannot write
			// either: its lease is counted afresh once the store answers.
			c.mu.Lock()
			c.seen = leaseSighting{}
			c.mu.Unlock()
			return nil, fmt.Errorf("credentials: profile %q: %w", c.cfg.Profile, err)
		}
		next := &storage.Record{Profile: c.cfg.Profile}
		if rec != nil {
			next = rec.Clone()
		}
		now := c.cfg.Now()
		if stale == forceRefresh {
			stale = c.tokenFrom(next, now)
			if stale == nil {
				stale = forceRefresh
			}
		}
		// Check the store first: another process may have refreshed.
		if t := c.tokenFrom(next, now); t.Valid(now) && (stale == nil || t.AccessToken != stale.AccessToken) {
			c.cur.Store(t)
			c.succeeded()
			ft.adopt()
			log.Debug("adopted token from store", "expiry", t.Expiry)
			return t, nil
		}
		if settleErr != nil {
			return nil, settleErr
		}
		if err := c.refreshable(next); err != nil {
			return nil, err
		}
		if end := c.leaseEnd(next.Lease, now); now.Before(end) {
			// Someone is refreshing: wait for their write, at most until
			// their lease ends (then it is theirs no more and we take over).
			log.Debug("waiting for lease holder", "owner", next.Lease.Owner, "for", end.Sub(now))
			ft.waiting(next.Lease.Owner, end.Sub(now))
			if slot != nil {
				slot() // another process is at the endpoint: our slot is not needed
				slot = nil
			}
			wctx, wcancel := context.WithTimeout(ctx, end.Sub(now)+backoff.Jitter(c.cfg.PollInterval))
			err := c.store.Wait(wctx, c.cfg.Profile, rev, c.cfg.PollInterval)
			wcancel()
			if err != nil && ctx.Err() != nil {
				return nil, fmt.Errorf("credentials: profile %q: waiting for another refresher: %w", c.cfg.Profile, ctx.Err())
			}
			continue
		}
		// The endpoint's pace: a pause it asked for, a bound on refreshes
		// in flight. Having waited for it, read again (another replica may
		// have refreshed meanwhile) but keep the slot: giving it up would
		// let a crowd of flights wait for each other for ever.
		if slot == nil {
			release, waited, err := c.cfg.Limiter.acquire(ctx, next.TokenURL, c.cfg.Now)
			if err != nil {
				return nil, fmt.Errorf("credentials: profile %q: waiting for the token endpoint: %w", c.cfg.Profile, err)
			}
			slot = release
			if waited {
				continue
			}
		} else if waited, err := c.cfg.Limiter.wait(ctx, next.TokenURL, c.cfg.Now); err != nil {
			return nil, fmt.Errorf("credentials: profile %q: waiting for the token endpoint: %w", c.cfg.Profile, err)
		} else if waited {
			continue
		}
		now = c.cfg.Now()
		next.Lease = &storage.Lease{Owner: c.owner, Until: now.Add(c.cfg.LeaseTTL), TTL: storage.Duration(c.cfg.LeaseTTL)}
		lctx, done := ft.child(ctx, spanLeaseTake)
		leaseRev, err := c.store.Replace(lctx, rec, rev, next)
		done(err)
		if errors.Is(err, storage.ErrConflict) {
			// Someone moved first: read again. A store that keeps
			// answering conflict (a claim a dead writer left) must not
			// turn this loop into a flood of writes.
			conflicts++
			if conflicts > 2 {
				if err := backoff.Sleep(ctx, backoff.Exponential(c.cfg.PollInterval/16, conflicts-3)); err != nil {
					return nil, fmt.Errorf("credentials: profile %q: taking the refresh lease: %w", c.cfg.Profile, err)
				}
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("credentials: profile %q: taking the refresh lease: %w", c.cfg.Profile, err)
		}
		conflicts = 0
		ft.leaseTaken(rec)
		log.Debug("lease taken, calling token endpoint", "attempt", tries.attempt)
		t, again, err := c.refreshUnderLease(ctx, next, leaseRev, now, stale, &tries)
		if again {
			continue
		}
		return t, err
	}
}

// settle writes what this process holds back, then what the recovery
// journal holds for the profile, under the lineage rule.
func (c *Credentials) settle(ctx context.Context) error {
	if err := c.flushPending(ctx); err != nil {
		return err
	}
	return c.replayJournal(ctx)
}

// refreshUnderLease calls the endpoint while holding the lease taken at
// leaseRev on leased (the record as written with our lease), and stores
// what it gets. again means: go back and read the store, the situation
// changed or a temporary failure is worth a retry.
func (c *Credentials) refreshUnderLease(ctx context.Context, leased *storage.Record, leaseRev storage.Revision, takenAt time.Time, stale *Token, tries *tries) (t *Token, again bool, err error) {
	log := c.cfg.Logger.With("profile", c.cfg.Profile)
	used := leased.RefreshToken
	// From here on the server may rotate the refresh token: Close must not
	// cut the call or the write that keeps its answer, so both run
	// detached from the flight's cancellation, bounded by their own
	// timeouts (which the lease outlives).
	keep := context.WithoutCancel(ctx)
	// The call must leave time to store its answer while the lease lasts:
	// taking the lease may itself have been slow, and an answer stored
	// after the lease may meet a replica that took over and spent the
	// same token. With less than half its time left there is no call: one
	// cut that short would likely lose its answer after the server rotated.
	var got *Tokens
	sent := c.cfg.Now()
	if budget := min(c.cfg.RefreshTimeout, takenAt.Add(c.cfg.LeaseTTL-c.cfg.StoreTimeout).Sub(sent)); budget >= c.cfg.RefreshTimeout/2 {
		rctx, rcancel := context.WithTimeout(keep, budget)
		rctx, done := c.endpointCall(rctx, leased)
		got, err = c.callEndpoint(rctx, leased, sent)
		done(err)
		rcancel()
	} else {
		err = errLeaseTooShort
	}
	if err != nil {
		// An endpoint that asks for a pause (429 or 503 with Retry-After)
		// gets it from every profile of the process (Limiter), and from
		// every replica for this profile: the lease is parked for the
		// pause rather than released (see parkFor). Our retry comes a
		// jittered moment after the pause, so that the calls one second
		// turned away do not all come back together in the next.
		var ee *EndpointError
		pause := time.Duration(0)
		if errors.As(err, &ee) && ee.RetryAfter > 0 {
			pause = min(ee.RetryAfter, c.cfg.Limiter.maxHoldOff())
			c.cfg.Limiter.holdOff(leased.TokenURL, pause, c.cfg.Now())
			pause += backoff.Jitter(pause / 2)
		}
		// Decided before the lease goes: a lease is parked only for a
		// retry that will come. One left parked by a flight that ends
		// would hold every other replica off for its LeaseTTL, also one
		// whose token has expired meanwhile.
		d := max(backoff.Exponential(c.cfg.RetryBackoff, tries.attempt), pause)
		retry := temporary(err) && tries.attempt < c.cfg.MaxRetries && ctx.Err() == nil
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < d+c.cfg.RefreshTimeout {
			retry = false // the flight would end inside the pause
		}
		park := time.Duration(0)
		if retry {
			park = c.parkFor(pause)
		}
		c.releaseLease(ctx, leased, leaseRev, takenAt.Add(c.cfg.LeaseTTL), park)
		if errors.Is(err, ErrInvalidGrant) {
			// Re-check before reporting: a refresher whose lease lapsed
			// may have rotated the token under us.
			lctx, lcancel := context.WithTimeout(keep, c.cfg.StoreTimeout)
			cur, _, lerr := c.store.Load(lctx, c.cfg.Profile)
			lcancel()
			if lerr == nil && cur.RefreshToken != used {
				return nil, true, nil
			}
			log.Warn("grant rejected: re-authorization required", "err", err)
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
		// A call that failed ambiguously (a timeout, a cut or truncated
		// reply) may have reached the server and rotated the token. The
		// retry below presents the same token again: with a reuse grace
		// period that recovers the grant, without one the grant was lost
		// with the reply and the retry only learns it sooner.
		//
		// A pause is retried here, once per pause, under the parked lease,
		// up to MaxRetries like any temporary failure. Measured against
		// the alternatives in credentialstest.Burst (P = 1,000, R = 8, 8 s
		// tokens): ending the flight at a second 429 (as before parking)
		// left the renewal to the next flight after the hold-off, and
		// once the token had expired meanwhile its lease was released
		// and the waiting replicas presented it one after another inside
		// the pause (up to 8 429s within 30 ms); ending it at the first
		// 429 failed Token calls (143 in one run, with a retry jitter of a
		// whole pause): a caller without a valid token meets the hold-off
		// and fails fast, where here it waits for the retry.
		if retry {
			log.Debug("temporary token endpoint failure; backing off", "err", err, "backoff", d)
			tries.attempt++
			if backoff.Sleep(ctx, d) == nil {
				return nil, true, nil
			}
			if park > 0 {
				// Cut short (Close): the retry the park waited for will
				// not come.
				dctx, cancel := context.WithTimeout(keep, c.cfg.StoreTimeout)
				c.dropOwnLease(dctx)
				cancel()
			}
		}
		return nil, false, c.failedFor(err, stale, pause)
	}

	rec := leased.Clone()
	rec.AccessToken, rec.TokenType, rec.Expiry, rec.IssuedAt = got.AccessToken, got.TokenType, got.Expiry, sent.UTC()
	if got.RefreshToken != "" {
		rec.Rotate(got.RefreshToken.Reveal())
	}
	// rec keeps our lease until the write is known to have landed: see
	// errHeldBack. The rotated refresh token is durable (in the store, or
	// in the recovery journal) before the new access token reaches a caller.
	wctx, done := c.child(ctx, spanWriteBack)
	err = c.persistDurably(wctx, leased, leaseRev, rec, takenAt.Add(c.cfg.LeaseTTL))
	done(err)
	if err != nil {
		c.failed(err, stale)
		return nil, false, err
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
// the longer of the holder's TTL and ours: a fleet mid-rollout mixes lease
// settings, and a replica with a short lease must not cut a long one (up to
// maxHonouredLease, so that one misconfigured replica cannot stall the rest
// for hours). The holder's Until is not used: even a lease that looks
// abandoned long ago may be a holder whose clock is wrong, or one that
// could not write during a store outage; it costs one lease to find out.
func (c *Credentials) leaseEnd(l *storage.Lease, now time.Time) time.Time {
	if l == nil || l.Owner == c.owner {
		return time.Time{}
	}
	ttl := max(c.cfg.LeaseTTL, min(time.Duration(l.TTL), maxHonouredLease))
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen.owner != l.Owner || !c.seen.until.Equal(l.Until) {
		c.seen = leaseSighting{owner: l.Owner, until: l.Until, at: now}
	}
	return c.seen.at.Add(ttl)
}

// parkFor returns how long to keep our lease on the record leased after
// the endpoint asked for a pause (our retry comes when it ends), or 0 to
// release it. The caller parks only for a retry that will come.
//
// Released, the lease lets any replica present the same refresh token at
// once, inside the pause: its own limiter knows nothing of the pause, so
// it is throttled too, and so is the next one (8 replicas presented one
// expired token 8 times within 30 ms at P = 10,000 when only valid tokens
// were parked). Parked (written back with our lease for the pause), the
// lease keeps the others waiting, as for any live lease, while those with
// a valid token go on serving it; this process's flight retakes its own
// lease when the pause ends (leaseEnd ignores our own), presents the token
// again, and its write wakes the waiters. Only a retry that will come is
// parked for: a flight out of retries, or whose deadline falls inside the
// pause, releases the lease as before, and one cut short by Close takes
// the park off. A holder that dies while parked costs what one dying
// under an ordinary lease does: the others take over once its lease lapses
// on their clocks.
func (c *Credentials) parkFor(pause time.Duration) time.Duration {
	return max(pause, 0)
}

// errLeaseTooShort: taking the lease took so long that a token call could
// not be stored before the lease ends. Temporary: the flight tries again.
var errLeaseTooShort = errors.New("credentials: taking the refresh lease left no time for the token call")

// tries counts one flight's retries of the token endpoint.
type tries struct {
	attempt int // temporary failures retried
}

// maxHonouredLease bounds how long a waiter honours a holder's lease TTL.
const maxHonouredLease = 10 * time.Minute

// refreshable checks that rec has what a refresh needs.
func (c *Credentials) refreshable(rec *storage.Record) error {
	if c.cfg.Grant != nil {
		return nil
	}
	missing, err := MissingForRefresh(rec)
	if err != nil {
		return err
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

// callEndpoint obtains new tokens by the Grant, else by the refresh-token
// grant in the record's flavor. Its errors have the record's secrets, and
// a SecretHolder's, masked: some token endpoints echo what they were sent
// in error_description.
func (c *Credentials) callEndpoint(ctx context.Context, rec *storage.Record, sent time.Time) (*Tokens, error) {
	t, err := c.callEndpointUnmasked(ctx, rec, sent)
	if err != nil {
		secrets := recordSecrets(rec)
		if h, ok := c.cfg.Grant.(SecretHolder); ok {
			secrets = append(secrets, h.Secrets()...)
		}
		err = maskSecrets(err, secrets)
	}
	return t, err
}

func (c *Credentials) callEndpointUnmasked(ctx context.Context, rec *storage.Record, sent time.Time) (*Tokens, error) {
	if c.cfg.Grant != nil {
		return c.cfg.Grant.Obtain(ctx, rec)
	}
	if httpsafe.Cleartext(rec.TokenURL) {
		c.cleartext.Do(func() {
			c.cfg.Logger.Warn("the token endpoint is plain http on another machine: the client secret and refresh token travel in clear",
				"profile", c.cfg.Profile, "token_url", secret.RedactURL(rec.TokenURL))
		})
	}
	f, err := flavorOf(c.cfg.Profile, rec)
	if err != nil {
		return nil, err
	}
	if f != nil {
		return f.Refresh(ctx, c.endpoint.client, rec)
	}
	tr, err := c.endpoint.refreshGrant(ctx, rec)
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
	skew, ahead := c.cfg.Skew, c.cfg.RenewAhead
	if !expiry.IsZero() {
		// Short-lived tokens: a skew as long as the lifetime would make
		// every token invalid on arrival. Cap it against the lifetime when
		// we know it (a token given to us from outside may have lived long
		// before; it gets the full skew).
		if issued := rec.IssuedAt; !issued.IsZero() && issued.Before(expiry) {
			skew = min(skew, expiry.Sub(issued)/4)
		}
		ahead = min(ahead, max(expiry.Sub(now), 0)/2)
	}
	return newToken(rec.AccessToken, rec.TokenType, expiry, skew, ahead, c.cfg.RenewSpread*renewalPoint(rec.AccessToken, c.cfg.Rand()))
}

func (c *Credentials) succeeded() {
	c.mu.Lock()
	c.failures, c.holdOff, c.lastErr = 0, time.Time{}, nil
	c.mu.Unlock()
}

// failed records a temporary failure and sets a jittered hold-off before
// the next attempt.
func (c *Credentials) failed(err error, stale *Token) error { return c.failedFor(err, stale, 0) }

// failedFor is failed with a hold-off of at least pause, as an endpoint
// that answered Retry-After asked.
func (c *Credentials) failedFor(err error, stale *Token, pause time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failures++
	c.lastErr = err
	c.holdOff = c.cfg.Now().Add(max(backoff.Exponential(c.cfg.RetryBackoff, c.failures), pause))
	c.heldOff(pause)
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
