// Package resolver finds a profile's credentials top-down, first match
// wins, one source only (the rule of pancloud's Credentials, which vendor
// flavours such as package pancloud build on):
//
//  1. Values given explicitly (Options). If any of access token, client id,
//     client secret or refresh token is given, only explicit values count.
//  2. Else the environment, under the variable names Options.Env gives: if
//     any of them is set, only those count.
//  3. Else the profile in the store.
//
// Rule EachField relaxes that for command lines, where a flag may override
// one variable: each value comes from the first source that has it.
//
// A Grant (Options.Grant: a redemption service, client credentials) may
// obtain the tokens instead; the profile then need not exist beforehand.
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

// EnvNames names the variables the environment source reads; a vendor's
// flavour gives its names. The zero value reads none.
type EnvNames struct {
	AccessToken, ClientID, ClientSecret, RefreshToken string
}

// Source says where credentials came from.
type Source string

const (
	Explicit    Source = "explicit"
	Environment Source = "environment"
	Store       Source = "store"
	// Mixed: Rule EachField took values from both explicit options and
	// the environment.
	Mixed Source = "mixed"
)

// Rule says how explicit values and the environment combine.
type Rule int

const (
	// FirstSource: the first source that has any credential gives all of
	// them; the others are not consulted. The default.
	FirstSource Rule = iota
	// EachField: each credential comes from the first source that has it,
	// so an explicit value overrides one variable and the rest still come
	// from the environment. For command lines, whose flags complete the
	// environment.
	EachField
)

// Options are the explicitly given values and where to look for the rest.
type Options struct {
	Profile string // default "default"

	AccessToken  secret.Secret
	ClientID     string
	ClientSecret secret.Secret
	RefreshToken secret.Secret

	// TokenURL and Flavor describe the token endpoint for seeded
	// credentials, and fill in a stored profile that has none.
	TokenURL string
	Flavor   string

	// Env names the environment variables to read; the zero value reads
	// none.
	Env EnvNames
	// Getenv reads the environment; default os.Getenv.
	Getenv func(string) string
	// Rule combines explicit values and the environment; default
	// FirstSource.
	Rule Rule

	// Grant, when set, obtains the profile's tokens (credentials.Config.Grant);
	// the profile need not be in the store.
	Grant credentials.Grant
}

// Result is the outcome of Resolve.
type Result struct {
	Source  Source
	Profile string
	// Seed holds explicit or environment values; nil for Store.
	Seed *storage.Record
	// Grant is Options.Grant.
	Grant            credentials.Grant
	tokenURL, flavor string
}

// Resolve applies the rules to opts and the environment. It does no I/O.
func Resolve(opts Options) Result {
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	res := Result{Profile: opts.Profile, Source: Store, Grant: opts.Grant, tokenURL: opts.TokenURL, flavor: opts.Flavor}
	if res.Profile == "" {
		res.Profile = "default"
	}
	read := func(name string) string {
		if name == "" {
			return ""
		}
		return getenv(name)
	}
	explicit := [4]string{opts.AccessToken.Reveal(), opts.ClientID, opts.ClientSecret.Reveal(), opts.RefreshToken.Reveal()}
	env := [4]string{read(opts.Env.AccessToken), read(opts.Env.ClientID), read(opts.Env.ClientSecret), read(opts.Env.RefreshToken)}
	var vals [4]string
	switch {
	case opts.Rule == EachField:
		fromExplicit, fromEnv := false, false
		for i := range vals {
			switch {
			case explicit[i] != "":
				vals[i], fromExplicit = explicit[i], true
			case env[i] != "":
				vals[i], fromEnv = env[i], true
			}
		}
		switch {
		case fromExplicit && fromEnv:
			res.Source = Mixed
		case fromExplicit:
			res.Source = Explicit
		case fromEnv:
			res.Source = Environment
		}
	case explicit != [4]string{}:
		vals, res.Source = explicit, Explicit
	case env != [4]string{}:
		vals, res.Source = env, Environment
	}
	if res.Source != Store {
		res.Seed = &storage.Record{Profile: res.Profile, AccessToken: secret.Secret(vals[0]), ClientID: vals[1],
			ClientSecret: secret.Secret(vals[2]), RefreshToken: secret.Secret(vals[3]), TokenURL: opts.TokenURL, Flavor: opts.Flavor}
	}
	return res
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
			if rec.ClientID == "" && rec.RefreshToken == "" && rec.AccessToken == "" && r.Grant == nil {
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
// profile's Credentials; cfg supplies everything but Store, Profile and
// (when opts has one) Grant. The caller closes the Credentials; st stays
// the caller's.
func Credentials(ctx context.Context, st *storage.Store, opts Options, cfg credentials.Config) (*credentials.Credentials, error) {
	res := Resolve(opts)
	if err := res.Apply(ctx, st); err != nil {
		return nil, err
	}
	cfg.Store, cfg.Profile = st, res.Profile
	if res.Grant != nil {
		cfg.Grant = res.Grant
	}
	return credentials.New(cfg)
}
