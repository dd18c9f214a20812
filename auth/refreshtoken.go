package auth

import (
	"context"
	"fmt"
	"net/url"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
)

func init() { registerConfig("oauth2_refresh_token", NewRefreshToken) }

// RefreshTokenConfig configures the OAuth 2.0 refresh-token flow of
// package credentials. Every option is optional
// when the store already holds the profile, and the store wins over the
// options, since the refresh token it holds may have rotated since the
// configuration was written.
type RefreshTokenConfig struct {
	TokenURL     string                `json:"token_url"`
	ClientID     string                `json:"client_id"`
	ClientSecret secret.Secret         `json:"client_secret"`
	RefreshToken secret.Secret         `json:"refresh_token"`
	ClientAuth   credentials.AuthStyle `json:"client_auth"`
	// Flavor is credentials.FlavorOAuth2 (default) or a registered
	// flavor, such as package pancloud's.
	Flavor string `json:"flavor"`
	Header string `json:"header"`
	Format string `json:"format"`
}

const refreshTokenScheme = "oauth2_refresh_token"

// NewRefreshToken returns an authorizer over a credentials.Credentials for
// env.Profile in env.Store, seeding the profile from c if it is missing.
func NewRefreshToken(c RefreshTokenConfig, env Env) (*TokenAuthorizer, error) {
	const scheme = refreshTokenScheme
	style, err := authStyle(scheme, c.ClientAuth)
	if err != nil {
		return nil, err
	}
	if u, err := url.Parse(c.TokenURL); c.TokenURL != "" && (err != nil || !u.IsAbs()) {
		return nil, &OptionError{Scheme: scheme, Option: "token_url", Reason: "want an absolute URL"}
	}
	if _, ok := credentials.LookupFlavor(c.Flavor); !ok {
		return nil, &OptionError{Scheme: scheme, Option: "flavor", Reason: fmt.Sprintf("want one of %q (a flavor's package registers it)", credentials.Flavors())}
	}
	header, format, err := tokenHeader(scheme, c.Header, c.Format)
	if err != nil {
		return nil, err
	}
	fit := func(_ context.Context, rec *storage.Record, exists bool) (bool, error) {
		if exists && c.ClientID != "" && rec.ClientID != "" && rec.ClientID != c.ClientID {
			return false, fmt.Errorf("%w: the stored client_id differs from this configuration's", ErrProfileInUse)
		}
		if exists && rec.Scheme != "" {
			return false, fmt.Errorf("%w: the profile belongs to scheme %q", ErrProfileInUse, rec.Scheme)
		}
		// Fill only what the record lacks: its refresh token may be newer.
		write := false
		fill := func(dst *string, v string) {
			if *dst == "" && v != "" {
				*dst, write = v, true
			}
		}
		fill(&rec.TokenURL, c.TokenURL)
		fill(&rec.ClientID, c.ClientID)
		fill(&rec.Flavor, c.Flavor)
		fill((*string)(&rec.ClientSecret), string(c.ClientSecret))
		// The configured refresh token is a seed: taken by a profile that
		// has never held it, marked as seen by one that holds it now.
		grant := rec.Lineage.Grant
		if rec.Seed(c.RefreshToken.Reveal()) || rec.Lineage.Grant != grant {
			write = true
		}
		return write, nil
	}
	return newTokenAuthorizer(env, tokenOptions{scheme: scheme, authStyle: style, header: header, format: format,
		trackRefresh: true, ensure: fit,
		secrets: map[string][]secret.Secret{"client_secret": clientSecrets(c.ClientID, c.ClientSecret), "configured_refresh_token": {c.RefreshToken}}})
}
