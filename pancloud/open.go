package pancloud

import (
	"context"
	"errors"
	"os"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/resolver"
	"github.com/tokencache/tokencache/secret"
)

// Config is what pancloud's Credentials constructor takes. The embedded
// credentials.Config says where the profile lives (Store, required;
// Profile, default "default") and tunes the refresh protocol; its
// ManualRefresh is pancloud's auto_refresh=False.
type Config struct {
	credentials.Config

	// Explicit credentials, pancloud's constructor keywords. If any is
	// set, the PAN_* variables are not read; else if any PAN_* variable is
	// set, only those count; else the stored profile.
	AccessToken  secret.Secret
	ClientID     string
	ClientSecret secret.Secret
	RefreshToken secret.Secret

	// DeveloperToken, explicit or from PAN_DEVELOPER_TOKEN, selects the
	// developer-token flow (see DeveloperToken); DeveloperTokenProvider,
	// or PAN_DEVELOPER_TOKEN_PROVIDER, is its redemption service.
	DeveloperToken         secret.Secret
	DeveloperTokenProvider string

	// BaseURL is the token endpoints' base for explicit and environment
	// credentials, and for a stored profile that names none; default
	// DefaultBaseURL.
	BaseURL string

	// Getenv reads the environment; default os.Getenv.
	Getenv func(string) string
}

// Options returns the resolver options cfg stands for: its explicit
// values, pancloud's environment, the pancloud flavor at BaseURL, and the
// developer-token grant when there is a developer token. For callers that
// resolve themselves (resolver.Resolve, then Apply).
func (cfg Config) Options() resolver.Options {
	getenv := cfg.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	base := cfg.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	opts := resolver.Options{
		Profile: cfg.Profile, AccessToken: cfg.AccessToken, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret,
		RefreshToken: cfg.RefreshToken, TokenURL: base, Flavor: Flavor, Env: Env(), Getenv: getenv,
	}
	dev := DeveloperTokenFromEnv(getenv)
	if cfg.DeveloperToken != "" {
		dev = &DeveloperToken{Token: cfg.DeveloperToken, Provider: getenv(EnvDeveloperTokenProvider)}
	}
	if dev != nil {
		if cfg.DeveloperTokenProvider != "" {
			dev.Provider = cfg.DeveloperTokenProvider
		}
		dev.HTTPClient = cfg.HTTPClient
		opts.Grant = dev
	}
	return opts
}

// Open resolves cfg as pancloud's Credentials does, seeds the store's
// profile with explicit or environment values (under the store's lineage
// rule: a refresh token the profile has held before is never put back)
// and returns the profile's Credentials. It does I/O (hence Open, not
// New); the caller closes the Credentials, and the Store stays the
// caller's to close.
func Open(ctx context.Context, cfg Config) (*credentials.Credentials, error) {
	if cfg.Store == nil {
		return nil, errors.New("pancloud: Config.Store is required")
	}
	return resolver.Credentials(ctx, cfg.Store, cfg.Options(), cfg.Config)
}
