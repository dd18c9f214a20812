package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokencache/tokencache/auth"
	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/pancloud"
	"github.com/tokencache/tokencache/storage"
)

// Extra record members of a profile made by init --scheme: the scheme's
// registry name and its options, from which every command builds the
// scheme again through the registry (auth.New), as a program would.
const (
	extraAuthScheme = "auth_scheme"
	extraAuthParams = "auth_params"
)

// schemeInput is what init --scheme takes.
type schemeInput struct {
	name       string
	params     []string // --param k=v
	paramFiles []string // --param-file k=path
}

// params gathers the scheme's options: --param, --param-file, and the
// generic flags that name the same options (--token-url, --client-id,
// --client-secret, --scope), which a scheme that has no such option
// rejects by name.
func (a *app) schemeParams(cmd *cobra.Command, s schemeInput, in profileInput) (auth.Params, error) {
	p := auth.Params{}
	set := func(flag, k string, v any) error {
		if _, dup := p[k]; dup {
			return usagef("%s: option %q is given twice", flag, k)
		}
		p[k] = v
		return nil
	}
	for _, kv := range s.params {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			// Not quoted: without "=" the whole argument may be the
			// value, often a secret.
			return nil, usagef("--param wants NAME=VALUE; one has no name or no \"=\" (not repeated here: it may hold a secret)")
		}
		if err := set("--param", k, v); err != nil {
			return nil, err
		}
	}
	for _, kp := range s.paramFiles {
		k, path, ok := strings.Cut(kp, "=")
		if !ok || k == "" || path == "" {
			return nil, usagef("--param-file wants NAME=PATH")
		}
		v, err := a.readSecretFile("--param-file "+k, path)
		if err != nil {
			return nil, err
		}
		if err := set("--param-file", k, v.Reveal()); err != nil {
			return nil, err
		}
	}
	for _, g := range []struct{ flag, key, v string }{
		{"--token-url", "token_url", in.tokenURL}, {"--client-id", "client_id", in.clientID}, {"--client-secret", "client_secret", in.clientSecret.Reveal()},
	} {
		if g.v != "" {
			if err := set(g.flag, g.key, g.v); err != nil {
				return nil, err
			}
		}
	}
	if len(in.scopes) > 0 {
		if err := set("--scope", "scopes", strings.Join(in.scopes, " ")); err != nil {
			return nil, err
		}
	}
	for _, f := range []string{"refresh-token", "refresh-token-file", "access-token", "access-token-file", "from-file", "flavor", "expires-in", "revoke-url", "authorize-url"} {
		if cmd.Flag(f).Changed {
			return nil, usagef("--%s does not go with --scheme: give the scheme's options with --param", f)
		}
	}
	return p, nil
}

// authEnv is what a scheme built for profile in st takes from the CLI.
func (a *app) authEnv(st *storage.Store) auth.Env {
	cfg := a.credConfig(st)
	return auth.Env{Store: st, Profile: a.profile, HTTPClient: cfg.HTTPClient, Logger: cfg.Logger, Credentials: cfg}
}

// initScheme saves a profile that authorizes with a registered scheme.
// A scheme that obtains tokens (client credentials, password, a token
// endpoint, ...) obtains its first one now, through the profile: that
// checks the options end to end and leaves a token for the next command.
func (a *app) initScheme(ctx context.Context, name string, params auth.Params, force bool) error {
	if !slices.Contains(auth.Schemes(), name) {
		return usagef("--scheme must be one of %s, not %q", strings.Join(auth.Schemes(), ", "), name)
	}
	st, err := a.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	cur, _, err := st.Load(ctx, a.profile)
	switch {
	case errors.Is(err, storage.ErrNotFound):
	case err != nil:
		return err
	default:
		var had string
		var hadParams auth.Params
		cur.GetExtra(extraAuthScheme, &had)
		cur.GetExtra(extraAuthParams, &hadParams)
		switch {
		case had == name && maps.EqualFunc(hadParams, params, func(x, y any) bool { return fmt.Sprint(x) == fmt.Sprint(y) }):
			fmt.Fprintf(a.stdout, "profile %q saved in %s: nothing changed\n", a.profile, displayURL(a.storeURL))
			return nil
		case !force && had != "":
			return usagef("init: profile %q uses scheme %q with other options; --force replaces it (its tokens are dropped)", a.profile, had)
		case !force && (cur.RefreshToken != "" || cur.ClientID != "" || cur.AccessToken != ""):
			return usagef("init: profile %q holds credentials of its own; --force replaces them with scheme %q (or use another --profile)", a.profile, name)
		}
		// A new configuration starts from a cleared profile (the scheme
		// checks a stored one against its options and refuses a
		// mismatch). Its lineage stays, under a new, empty grant: the
		// refresh tokens it held are never taken back.
		if _, _, err := st.Update(ctx, a.profile, func(r *storage.Record) error {
			r.Grant("")
			r.ClientID, r.ClientSecret, r.TokenURL, r.Flavor, r.Scopes, r.Scheme = "", "", "", "", nil, ""
			r.AccessToken, r.TokenType, r.Expiry, r.IssuedAt = "", "", time.Time{}, time.Time{}
			r.Extra = nil
			return nil
		}); err != nil {
			return err
		}
	}
	authz, err := auth.New(name, params, a.authEnv(st))
	if err != nil {
		var oe *auth.OptionError
		if errors.As(err, &oe) {
			return usagef("init --scheme %s: %v", name, err)
		}
		return err
	}
	if c, ok := authz.(io.Closer); ok {
		defer c.Close()
	}
	note := "no token endpoint: requests are authorized as they leave"
	if ta, ok := authz.(*auth.TokenAuthorizer); ok {
		tok, err := ta.Token(ctx)
		if err != nil {
			return err
		}
		note = "first token obtained"
		if !tok.Expiry.IsZero() {
			note += ", valid until " + tok.Expiry.UTC().Format("2006-01-02T15:04:05Z")
		}
	}
	if _, _, err := st.Update(ctx, a.profile, func(r *storage.Record) error {
		if err := r.SetExtra(extraAuthScheme, name); err != nil {
			return err
		}
		return r.SetExtra(extraAuthParams, params)
	}); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "profile %q saved in %s: scheme %s; %s\n", a.profile, displayURL(a.storeURL), name, note)
	return nil
}

// profileCredentials returns the profile's Credentials and what closes
// them: through its scheme when init --scheme made it, with pancloud's
// developer-token grant when PAN_DEVELOPER_TOKEN is set (resolved as the
// library resolves it, pancloud.Config.Options), else by the refresh
// protocol in the record's flavor.
func (a *app) profileCredentials(ctx context.Context, st *storage.Store) (*credentials.Credentials, func() error, error) {
	cfg := a.credConfig(st)
	// A profile that cannot be read (absent, corrupt, a store down) takes
	// the plain path, whose first read reports it as always.
	rec, _, err := st.Load(ctx, a.profile)
	var name string
	var params auth.Params
	if err == nil {
		if _, err := rec.GetExtra(extraAuthScheme, &name); err != nil {
			return nil, nil, err
		}
		if _, err := rec.GetExtra(extraAuthParams, &params); err != nil {
			return nil, nil, err
		}
	}
	if name != "" {
		authz, err := auth.New(name, params, a.authEnv(st))
		if err != nil {
			return nil, nil, err
		}
		ta, ok := authz.(*auth.TokenAuthorizer)
		if !ok {
			if c, ok := authz.(io.Closer); ok {
				c.Close()
			}
			return nil, nil, usagef("profile %q uses scheme %s, which signs each request and has no token to hand out", a.profile, name)
		}
		return ta.Credentials(), ta.Close, nil
	}
	if dev := a.developerToken(); dev != nil {
		dev.HTTPClient = cfg.HTTPClient
		cfg.Grant = dev
	}
	c, err := credentials.New(cfg)
	if err != nil {
		return nil, nil, usagef("%v", err)
	}
	return c, c.Close, nil
}

// developerToken is the developer-token grant pancloud's environment
// selects (PAN_DEVELOPER_TOKEN, PAN_DEVELOPER_TOKEN_PROVIDER), or nil.
func (a *app) developerToken() *pancloud.DeveloperToken {
	if g, ok := (pancloud.Config{Getenv: a.getenv}).Options().Grant.(*pancloud.DeveloperToken); ok {
		return g
	}
	return nil
}
