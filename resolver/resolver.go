// Package resolver finds a profile's credentials the way pancloud does:
// top-down, first match wins, one source only.
//
//  1. Values given explicitly (Options). If any of access token, client id,
//     client secret or refresh token is given, only explicit values count.
//  2. Else the environment: if any of PAN_ACCESS_TOKEN, PAN_CLIENT_ID,
//     PAN_CLIENT_SECRET, PAN_REFRESH_TOKEN is set, only those count.
//  3. Else the profile in the store.
//
// A developer token (explicit, or PAN_DEVELOPER_TOKEN with
// PAN_DEVELOPER_TOKEN_PROVIDER) selects the developer-token flow instead.
//
// Explicit and environment values seed the store's profile, so that the
// access tokens and rotated refresh tokens they lead to are shared like any
// other. Started again with the same environment, a process keeps the newer
// refresh token the store holds: a seed the profile has held is never put
// back (see Result.Apply).
package resolver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
)

// Environment variables, pancloud's names.
const (
	EnvAccessToken            = "PAN_ACCESS_TOKEN"
	EnvClientID               = "PAN_CLIENT_ID"
	EnvClientSecret           = "PAN_CLIENT_SECRET"
	EnvRefreshToken           = "PAN_REFRESH_TOKEN"
	EnvDeveloperToken         = "PAN_DEVELOPER_TOKEN"
	EnvDeveloperTokenProvider = "PAN_DEVELOPER_TOKEN_PROVIDER"
	EnvCredentialsFile        = "PAN_CREDENTIALS_DBFILE" // read by storage/file
)

// DefaultDeveloperTokenProvider is pancloud's API Explorer redemption service.
const DefaultDeveloperTokenProvider = "https://app.apiexplorer.rocks/request_token"

// Source says where credentials came from.
type Source string

const (
	Explicit    Source = "explicit"
	Environment Source = "environment"
	Store       Source = "store"
)

// Options are the explicitly given values and where to look for the rest.
type Options struct {
	Profile string // default "default"

	AccessToken  secret.Secret
	ClientID     string
	ClientSecret secret.Secret
	RefreshToken secret.Secret

	DeveloperToken         secret.Secret
	DeveloperTokenProvider string

	// TokenURL and Flavor describe the token endpoint for seeded
	// credentials, and fill in a stored profile that has none.
	TokenURL string
	Flavor   string

	// Getenv reads the environment; default os.Getenv.
	Getenv func(string) string
}

// Result is the outcome of Resolve.
type Result struct {
	Source  Source
	Profile string
	// Seed holds explicit or environment values; nil for Store.
	Seed *storage.Record
	// DeveloperToken, when set, selects the developer-token flow.
	DeveloperToken         secret.Secret
	DeveloperTokenProvider string
	tokenURL, flavor       string
}

// Resolve applies the rules to opts and the environment. It does no I/O.
func Resolve(opts Options) Result {
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	res := Result{Profile: opts.Profile, Source: Store, tokenURL: opts.TokenURL, flavor: opts.Flavor}
	if res.Profile == "" {
		res.Profile = "default"
	}
	res.DeveloperToken, res.DeveloperTokenProvider = opts.DeveloperToken, opts.DeveloperTokenProvider
	if res.DeveloperToken == "" {
		res.DeveloperToken = secret.Secret(getenv(EnvDeveloperToken))
	}
	if res.DeveloperTokenProvider == "" {
		res.DeveloperTokenProvider = getenv(EnvDeveloperTokenProvider)
	}
	if res.DeveloperToken != "" && res.DeveloperTokenProvider == "" {
		res.DeveloperTokenProvider = DefaultDeveloperTokenProvider
	}

	seed := func(src Source, access, id, sec, refresh string) {
		res.Source = src
		res.Seed = &storage.Record{Profile: res.Profile, AccessToken: secret.Secret(access), ClientID: id,
			ClientSecret: secret.Secret(sec), RefreshToken: secret.Secret(refresh), TokenURL: opts.TokenURL, Flavor: opts.Flavor}
	}
	switch {
	case opts.AccessToken != "" || opts.ClientID != "" || opts.ClientSecret != "" || opts.RefreshToken != "":
		seed(Explicit, opts.AccessToken.Reveal(), opts.ClientID, opts.ClientSecret.Reveal(), opts.RefreshToken.Reveal())
	case anySet(getenv, EnvAccessToken, EnvClientID, EnvClientSecret, EnvRefreshToken):
		seed(Environment, getenv(EnvAccessToken), getenv(EnvClientID), getenv(EnvClientSecret), getenv(EnvRefreshToken))
	}
	return res
}

func anySet(getenv func(string) string, names ...string) bool {
	for _, n := range names {
		if getenv(n) != "" {
			return true
		}
	}
	return false
}

// legacySeedMember is the Record extra member in which earlier versions
// kept a fingerprint of the whole seed. A record that has it and no lineage
// is migrated: a matching seed's refresh token counts as seen.
const legacySeedMember = "tokencache_seed"

// Apply writes the seed into the store's profile and fills in a missing
// token URL. For the Store source it checks that the profile exists.
//
// A seed is applied field by field. Client id, secret and endpoint take the
// seeded values (rotating a client secret in the environment rotates it in
// the store). The refresh token follows the store's lineage rule: a seed
// the profile has held before is never put back, since the store holds its
// successor (presenting the original again would look like token theft to
// a server that detects reuse); a seed it has never seen is a new grant and
// replaces the stored token, and the access token that belonged to it.
func (r Result) Apply(ctx context.Context, st *storage.Store) error {
	if r.Seed == nil {
		_, _, err := st.Update(ctx, r.Profile, func(rec *storage.Record) error {
			if rec.ClientID == "" && rec.RefreshToken == "" && rec.AccessToken == "" && r.DeveloperToken == "" {
				return fmt.Errorf("resolver: profile %q: %w", r.Profile, storage.ErrNotFound)
			}
			if rec.TokenURL != "" || r.tokenURL == "" {
				return storage.ErrAbort // nothing to change
			}
			rec.TokenURL, rec.Flavor = r.tokenURL, r.flavor
			return nil
		})
		if errors.Is(err, storage.ErrAbort) {
			return nil
		}
		return err
	}
	seed := r.Seed
	_, _, err := st.Update(ctx, r.Profile, func(rec *storage.Record) error {
		changed := false
		set := func(dst *string, v string) {
			if v != "" && *dst != v {
				*dst, changed = v, true
			}
		}
		set(&rec.ClientID, seed.ClientID)
		if seed.ClientSecret != "" && rec.ClientSecret != seed.ClientSecret {
			rec.ClientSecret, changed = seed.ClientSecret, true
		}
		set(&rec.TokenURL, seed.TokenURL)
		set(&rec.Flavor, seed.Flavor)
		var legacy string
		if ok, _ := rec.GetExtra(legacySeedMember, &legacy); ok {
			if legacy == legacyFingerprint(seed) && rec.Lineage.Grant == "" && seed.RefreshToken != "" {
				rec.Lineage.Grant = storage.SeedGrant(seed.RefreshToken.Reveal())
			}
			rec.SetExtra(legacySeedMember, nil)
			changed = true
		}
		switch {
		case seed.RefreshToken != "":
			grant := rec.Lineage.Grant
			if rec.Seed(seed.RefreshToken.Reveal()) {
				rec.AccessToken, rec.TokenType, rec.Expiry = seed.AccessToken, "", time.Time{}
				changed = true
			} else if rec.Lineage.Grant != grant {
				changed = true // a record without lineage learnt where its token came from
			}
		case seed.AccessToken != "" && rec.RefreshToken == "" && rec.AccessToken != seed.AccessToken:
			// An access token alone: nothing refreshes it, so the seed is
			// the newest there is.
			rec.AccessToken, rec.TokenType, rec.Expiry = seed.AccessToken, "", time.Time{}
			changed = true
		}
		if !changed {
			return storage.ErrAbort
		}
		return nil
	})
	if errors.Is(err, storage.ErrAbort) {
		return nil
	}
	return err
}

// legacyFingerprint is how earlier versions identified a seed.
func legacyFingerprint(r *storage.Record) string {
	h := sha256.New()
	for _, s := range []string{r.ClientID, r.ClientSecret.Reveal(), r.RefreshToken.Reveal(), r.AccessToken.Reveal(), r.TokenURL} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// Credentials resolves opts, applies the result to st and returns the
// profile's Credentials; cfg supplies everything but Store and Profile.
func Credentials(ctx context.Context, st *storage.Store, opts Options, cfg credentials.Config) (*credentials.Credentials, error) {
	res := Resolve(opts)
	if err := res.Apply(ctx, st); err != nil {
		return nil, err
	}
	cfg.Store, cfg.Profile = st, res.Profile
	if res.DeveloperToken != "" {
		cfg.DeveloperToken, cfg.DeveloperTokenProvider = res.DeveloperToken, res.DeveloperTokenProvider
	}
	return credentials.New(cfg)
}
