package credentials

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
)

// Profiles serves many profiles from one store, for multi-tenant apps: it
// creates each profile's Credentials once and shares it, so that every
// goroutine asking for a tenant uses the same cached token and flight.
type Profiles struct {
	cfg Config // template: Profile is set per profile

	// read is a snapshot of creds that lookups use without a lock, so that
	// many goroutines asking for tokens do not queue on mu; it is replaced
	// after enough misses that copying it costs O(1) per new profile.
	read   atomic.Pointer[map[string]*Credentials]
	closed atomic.Bool

	mu     sync.Mutex
	creds  map[string]*Credentials // every profile's, written under mu
	misses int
}

// NewProfiles returns Profiles over cfg.Store; every Credentials it makes
// uses cfg with its own Profile. Close closes them; cfg.Store stays open:
// whoever opened it closes it, after Profiles.Close (see Closing in the
// package doc).
func NewProfiles(cfg Config) (*Profiles, error) {
	probe := cfg
	if err := probe.setDefaults(); err != nil {
		return nil, err
	}
	if cfg.Limiter == nil {
		// One pace per token endpoint for all the profiles served here.
		cfg.Limiter = &EndpointLimiter{}
	}
	cfg.tel = newTelemetry(&cfg) // one set of instruments for every profile
	p := &Profiles{cfg: cfg, creds: map[string]*Credentials{}}
	p.read.Store(&map[string]*Credentials{})
	return p, nil
}

// publish makes the lock-free snapshot catch up with creds; mu is held.
func (p *Profiles) publish(now bool) {
	p.misses++
	if now || p.misses > len(*p.read.Load())/4 {
		snap := maps.Clone(p.creds)
		p.read.Store(&snap)
		p.misses = 0
	}
}

// Get returns the Credentials of profile, creating it on first use. It
// does not check that the profile exists: its first Token call does.
func (p *Profiles) Get(profile string) (*Credentials, error) {
	if c, ok := (*p.read.Load())[profile]; ok && !p.closed.Load() {
		return c, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed.Load() {
		return nil, driver.Wrap(storage.ErrClosed, "credentials: profiles", nil)
	}
	if c, ok := p.creds[profile]; ok {
		p.publish(false)
		return c, nil
	}
	cfg := p.cfg
	cfg.Profile = profile
	c, err := New(cfg)
	if err != nil {
		return nil, err
	}
	p.creds[profile] = c
	p.publish(false)
	return c, nil
}

// Token is Get(profile) then Token(ctx).
func (p *Profiles) Token(ctx context.Context, profile string) (*Token, error) {
	c, err := p.Get(profile)
	if err != nil {
		return nil, err
	}
	return c.Token(ctx)
}

// List returns the names of the profiles in the store.
func (p *Profiles) List(ctx context.Context) ([]string, error) { return p.cfg.Store.List(ctx) }

// Add creates or updates a profile's record. The record's Profile names it.
//
// Its refresh token follows the store's lineage rule. A record whose
// lineage says where its token comes from (rec.Grant was called, or it was
// loaded from a store) is written as such, and the store refuses it if it
// holds a newer token of that grant. A bare record is a seed: a refresh
// token the profile has held before is not put back (the stored one is its
// successor) while every other field is updated, so that an app may Add
// the same configuration on every start. A refresh in progress keeps its
// lease (Store.Update never changes it).
func (p *Profiles) Add(ctx context.Context, rec *storage.Record) error {
	if rec.Profile == "" {
		return errors.New("credentials: Add needs a record with a profile name")
	}
	_, _, err := p.cfg.Store.Update(ctx, rec.Profile, func(r *storage.Record) error {
		stored := r.Clone()
		*r = *rec.Clone()
		if rec.AccessToken == "" {
			// A configuration without a token: the cached one stays.
			r.AccessToken, r.TokenType, r.Expiry, r.IssuedAt = stored.AccessToken, stored.TokenType, stored.Expiry, stored.IssuedAt
		}
		for k, v := range stored.Extra {
			if _, given := r.Extra[k]; !given {
				if r.Extra == nil {
					r.Extra = map[string]json.RawMessage{}
				}
				r.Extra[k] = v
			}
		}
		if rec.Lineage.Grant == "" {
			r.Lineage, r.RefreshToken = stored.Lineage, stored.RefreshToken
			if rec.RefreshToken != stored.RefreshToken && !r.Seed(rec.RefreshToken.Reveal()) {
				// A seen seed: the stored token and its access token stay.
				r.AccessToken, r.TokenType, r.Expiry, r.IssuedAt = stored.AccessToken, stored.TokenType, stored.Expiry, stored.IssuedAt
			} else if rec.RefreshToken != stored.RefreshToken && rec.AccessToken == "" {
				// A new grant: the cached access token was the old one's.
				r.AccessToken, r.TokenType, r.Expiry, r.IssuedAt = "", "", time.Time{}, time.Time{}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("credentials: adding profile %q: %w", rec.Profile, err)
	}
	// A replaced record invalidates what the profile's Credentials cached.
	p.mu.Lock()
	c := p.creds[rec.Profile]
	p.mu.Unlock()
	if c != nil {
		c.forget()
	}
	return nil
}

// Remove deletes a profile from the store and closes its Credentials.
func (p *Profiles) Remove(ctx context.Context, profile string) error {
	p.mu.Lock()
	c := p.creds[profile]
	delete(p.creds, profile)
	p.publish(true)
	p.mu.Unlock()
	var closeErr error
	if c != nil {
		closeErr = c.Close() // an *UnpersistedError is worth knowing even here
	}
	return errors.Join(closeErr, p.cfg.Store.Delete(ctx, profile))
}

// Close closes every Credentials handed out and returns their errors
// joined: an *UnpersistedError names a rotated refresh token that is only
// in the recovery journal. It does not close the store, which stays usable
// by whoever opened it (and who closes it after this).
func (p *Profiles) Close() error {
	p.mu.Lock()
	creds := p.creds
	p.creds = map[string]*Credentials{}
	p.closed.Store(true)
	p.publish(true)
	p.mu.Unlock()
	var errs []error
	for _, c := range creds {
		errs = append(errs, c.Close())
	}
	p.cfg.tel.close()
	return errors.Join(errs...)
}

// forget drops the cached token, so the next Token reads the store.
func (c *Credentials) forget() {
	c.cur.Store(nil)
	c.mu.Lock()
	c.deadRT = ""
	c.mu.Unlock()
}
