package pancloud

import (
	"context"
	"net/http"
	"os"
	"time"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
)

// DeveloperToken is a credentials.Grant that redeems a developer token
// (from API Explorer) for access tokens at a redemption service. It needs
// nothing stored: Credentials with it obtain a token for a profile the
// store does not hold yet, and create it. It sends only the developer
// token, never the profile's refresh token or client secret, and it hands
// back no refresh token even if the service returns one: the service keeps
// what refreshes the access token, so the profile stores only the access
// token, as pancloud's credentials.json does.
type DeveloperToken struct {
	Token secret.Secret
	// Provider is the redemption service; default
	// DefaultDeveloperTokenProvider.
	Provider string
	// HTTPClient calls it; default a client with a 30 s timeout.
	// Redirects are never followed.
	HTTPClient *http.Client
}

// DeveloperTokenFromEnv returns the developer token PAN_DEVELOPER_TOKEN
// and PAN_DEVELOPER_TOKEN_PROVIDER give, or nil when the first is unset.
// getenv nil means os.Getenv.
func DeveloperTokenFromEnv(getenv func(string) string) *DeveloperToken {
	if getenv == nil {
		getenv = os.Getenv
	}
	tok := getenv(EnvDeveloperToken)
	if tok == "" {
		return nil
	}
	return &DeveloperToken{Token: secret.Secret(tok), Provider: getenv(EnvDeveloperTokenProvider)}
}

var defaultClient = &http.Client{Timeout: 30 * time.Second}

// Secrets implements credentials.SecretHolder: a provider that echoes the
// developer token in an error puts it into no error and no span.
func (d *DeveloperToken) Secrets() []secret.Secret { return []secret.Secret{d.Token} }

// Obtain implements credentials.Grant.
func (d *DeveloperToken) Obtain(ctx context.Context, _ *storage.Record) (*credentials.Tokens, error) {
	provider := d.Provider
	if provider == "" {
		provider = DefaultDeveloperTokenProvider
	}
	client := d.HTTPClient
	if client == nil {
		client = defaultClient
	}
	req, err := jsonRequest(ctx, provider, struct{}{}, d.Token)
	if err != nil {
		return nil, err
	}
	t, err := credentials.DoTokenRequest(client, req)
	if err != nil {
		return nil, err
	}
	t.RefreshToken = ""
	return t, nil
}
