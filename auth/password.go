package auth

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
)

func init() { registerConfig("oauth2_password", NewPassword) }

// PasswordConfig configures the OAuth 2.0 resource-owner password grant
// (RFC 6749 §4.3), SL1's ResourceOwner type: a trusted client logs a
// user in with the user's own credentials.
type PasswordConfig struct {
	TokenURL     string                `json:"token_url"`
	ClientID     string                `json:"client_id"`
	ClientSecret secret.Secret         `json:"client_secret"` // optional: public clients have none
	Username     string                `json:"username"`
	Password     secret.Secret         `json:"password"`
	Scopes       []string              `json:"scopes"`
	ClientAuth   credentials.AuthStyle `json:"client_auth"`
	Params       map[string]string     `json:"params"`
	Header       string                `json:"header"`
	Format       string                `json:"format"`
}

const passwordScheme = "oauth2_password"

// Grant returns the grant, for use in a credentials.Config of your own.
func (c PasswordConfig) Grant(client *http.Client) (credentials.Grant, error) {
	switch {
	case c.Username == "":
		return nil, &OptionError{Scheme: passwordScheme, Option: "username", Reason: "required"}
	case c.Password == "":
		return nil, &OptionError{Scheme: passwordScheme, Option: "password", Reason: "required"}
	}
	oc, err := newOAuthClient(passwordScheme, client, c.ClientAuth, c.TokenURL, c.ClientID, c.ClientSecret, c.Scopes, c.Params)
	if err != nil {
		return nil, err
	}
	return &passwordGrant{oauthClient: oc, username: c.Username, password: c.Password}, nil
}

type passwordGrant struct {
	*oauthClient
	username string
	password secret.Secret
	secrets  secrets // set by NewPassword, to mask refresh tokens as they rotate
}

// Obtain implements credentials.Grant. It spends the stored refresh token
// when there is one, which keeps the password off the wire, and logs in
// again when the server no longer accepts it.
func (g *passwordGrant) Obtain(ctx context.Context, rec *storage.Record) (*credentials.Tokens, error) {
	if rec.RefreshToken != "" {
		g.secrets.set("refresh_token", rec.RefreshToken) // another process may have rotated it
		t, err := g.request(ctx, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rec.RefreshToken.Reveal()}})
		if !errors.Is(err, credentials.ErrInvalidGrant) {
			return g.observe(t, err)
		}
	}
	form := url.Values{"grant_type": {"password"}, "username": {g.username}, "password": {g.password.Reveal()}}
	return g.observe(g.request(ctx, g.scopeParam(form)))
}

func (g *passwordGrant) observe(t *credentials.Tokens, err error) (*credentials.Tokens, error) {
	if err == nil && t.RefreshToken != "" {
		g.secrets.set("refresh_token", t.RefreshToken)
	}
	return t, err
}

// NewPassword returns an authorizer that sends password-grant tokens,
// cached with their refresh token in env.Store.
func NewPassword(c PasswordConfig, env Env) (*TokenAuthorizer, error) {
	g, err := c.Grant(env.client())
	if err != nil {
		return nil, err
	}
	header, format, err := tokenHeader(passwordScheme, c.Header, c.Format)
	if err != nil {
		return nil, err
	}
	pg := g.(*passwordGrant)
	a, err := newTokenAuthorizer(env, tokenOptions{scheme: passwordScheme, grant: g, authStyle: pg.style, header: header, format: format,
		password: true, ensure: pg.fits(passwordScheme, c.Username), clientID: c.ClientID, username: c.Username,
		secrets: map[string][]secret.Secret{"client_secret": clientSecrets(c.ClientID, c.ClientSecret), "password": {c.Password}}})
	if err == nil {
		pg.secrets = a.secrets
	}
	return a, err
}
