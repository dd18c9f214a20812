package auth

import (
	"context"
	"net/http"
	"net/url"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
)

func init() { registerConfig("oauth2_client_credentials", NewClientCredentials) }

// ClientCredentialsConfig configures the OAuth 2.0 client credentials
// grant (RFC 6749 §4.4): the client acts for itself, as en_auth's
// ServiceAccountAuthorizer does.
type ClientCredentialsConfig struct {
	TokenURL     string                `json:"token_url"`
	ClientID     string                `json:"client_id"`
	ClientSecret secret.Secret         `json:"client_secret"`
	Scopes       []string              `json:"scopes"`
	ClientAuth   credentials.AuthStyle `json:"client_auth"`
	// Params are extra form parameters, such as audience or resource.
	Params map[string]string `json:"params"`
	// Header and Format place the token; default "Authorization" and the
	// token type the server returns ("Bearer <token>").
	Header string `json:"header"`
	Format string `json:"format"`
	// APIKey, when set, goes with every request beside the token, in
	// APIKeyHeader (default X-Api-Key), as en_auth's authorizers send
	// the API key of their client information.
	APIKey       secret.Secret `json:"api_key"`
	APIKeyHeader string        `json:"api_key_header"`
}

const clientCredentialsScheme = "oauth2_client_credentials"

// Grant returns the grant, for use in a credentials.Config of your own.
func (c ClientCredentialsConfig) Grant(client *http.Client) (credentials.Grant, error) {
	if c.ClientSecret == "" {
		return nil, &OptionError{Scheme: clientCredentialsScheme, Option: "client_secret", Reason: "required"}
	}
	oc, err := newOAuthClient(clientCredentialsScheme, client, c.ClientAuth, c.TokenURL, c.ClientID, c.ClientSecret, c.Scopes, c.Params)
	if err != nil {
		return nil, err
	}
	return clientCredentialsGrant{oc}, nil
}

type clientCredentialsGrant struct{ *oauthClient }

// Obtain implements credentials.Grant. There is no refresh token (RFC
// 6749 §4.4.3): a new token is simply requested again.
func (g clientCredentialsGrant) Obtain(ctx context.Context, _ *storage.Record) (*credentials.Tokens, error) {
	return g.request(ctx, g.scopeParam(url.Values{"grant_type": {"client_credentials"}}))
}

// NewClientCredentials returns an authorizer that sends client-credentials
// tokens, cached in env.Store.
func NewClientCredentials(c ClientCredentialsConfig, env Env) (*TokenAuthorizer, error) {
	g, err := c.Grant(env.client())
	if err != nil {
		return nil, err
	}
	header, format, err := tokenHeader(clientCredentialsScheme, c.Header, c.Format)
	if err != nil {
		return nil, err
	}
	extra, err := apiKeyHeaders(clientCredentialsScheme, c.APIKeyHeader, c.APIKey, nil)
	if err != nil {
		return nil, err
	}
	oc := g.(clientCredentialsGrant).oauthClient
	return newTokenAuthorizer(env, tokenOptions{scheme: clientCredentialsScheme, grant: g, authStyle: oc.style,
		header: header, format: format, ensure: oc.fits(clientCredentialsScheme, ""), clientID: c.ClientID, extra: extra,
		secrets: map[string][]secret.Secret{"client_secret": clientSecrets(c.ClientID, c.ClientSecret), "api_key": {c.APIKey}}})
}

// apiKeyHeaders adds an API key, when there is one, to the extra headers
// a token scheme sends beside its token.
func apiKeyHeaders(scheme, header string, key secret.Secret, extra http.Header) (http.Header, error) {
	if key == "" {
		if header != "" {
			return nil, &OptionError{Scheme: scheme, Option: "api_key_header", Reason: "set without api_key"}
		}
		return extra, nil
	}
	if header == "" {
		header = DefaultAPIKeyHeader
	}
	if !validHeaderName(header) {
		return nil, &OptionError{Scheme: scheme, Option: "api_key_header", Reason: "not a valid header name"}
	}
	if extra == nil {
		extra = http.Header{}
	}
	extra.Set(header, key.Reveal())
	return extra, nil
}

// tokenHeader is headerOptions where an empty format means the token's
// own type.
func tokenHeader(scheme, header, format string) (string, string, error) {
	h, f, err := headerOptions(scheme, header, format)
	if format == "" {
		f = ""
	}
	return h, f, err
}
