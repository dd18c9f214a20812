package credentials

import (
	"context"
	"errors"
	"fmt"

	"github.com/tokencache/tokencache/internal/backoff"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
)

// What happens to a refreshed record: persist writes it under our lease;
// when the store is down, keepPending holds it and flushPending writes it
// once the store answers, so that a rotated refresh token is never dropped.

// errLeaseLost means the record changed under our lease (an operator edit,
// or our lease lapsed and another refresher went ahead).
var errLeaseLost = errors.New("credentials: lease lost")

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
			backoff.Sleep(c.root, backoff.Exponential(c.cfg.RetryBackoff, attempt))
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
