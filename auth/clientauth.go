package auth

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
)

// authStyle checks a scheme's client_auth option.
func authStyle(scheme string, s credentials.AuthStyle) (credentials.AuthStyle, error) {
	style, err := credentials.ParseAuthStyle(string(s))
	if err != nil {
		return "", &OptionError{Scheme: scheme, Option: "client_auth", Reason: `want "basic" or "body"`}
	}
	return style, nil
}

// reservedParams are form parameters the grants set themselves; extra
// parameters must not override them.
var reservedParams = []string{"grant_type", "client_id", "client_secret", "username", "password", "refresh_token", "scope"}

// oauthClient is what the RFC 6749 grants share.
type oauthClient struct {
	client       *http.Client
	style        credentials.AuthStyle
	tokenURL     string
	clientID     string
	clientSecret secret.Secret
	scopes       []string
	params       map[string]string
}

func newOAuthClient(scheme string, client *http.Client, clientAuth credentials.AuthStyle, tokenURL, clientID string,
	clientSecret secret.Secret, scopes []string, params map[string]string) (*oauthClient, error) {
	if u, err := url.Parse(tokenURL); tokenURL == "" || err != nil || !u.IsAbs() {
		return nil, &OptionError{Scheme: scheme, Option: "token_url", Reason: "want an absolute URL"}
	}
	if clientID == "" {
		return nil, &OptionError{Scheme: scheme, Option: "client_id", Reason: "required"}
	}
	style, err := authStyle(scheme, clientAuth)
	if err != nil {
		return nil, err
	}
	for k := range params {
		if slices.Contains(reservedParams, k) {
			return nil, &OptionError{Scheme: scheme, Option: "params", Reason: "must not set " + k + ", which the grant sets"}
		}
	}
	if client == nil {
		client = http.DefaultClient
	}
	return &oauthClient{client: client, style: style, tokenURL: tokenURL, clientID: clientID,
		clientSecret: clientSecret, scopes: scopes, params: params}, nil
}

func (c *oauthClient) request(ctx context.Context, form url.Values) (*credentials.Tokens, error) {
	for k, v := range c.params {
		form.Set(k, v)
	}
	return credentials.RequestToken(ctx, c.client, credentials.TokenRequest{TokenURL: c.tokenURL, ClientID: c.clientID,
		ClientSecret: c.clientSecret, AuthStyle: c.style, Form: form})
}

func (c *oauthClient) scopeParam(form url.Values) url.Values {
	if len(c.scopes) > 0 {
		form.Set("scope", strings.Join(c.scopes, " "))
	}
	return form
}

// fits checks that an existing record was made for this client, and seeds
// a new one: a cached token is only good for the client, endpoint, scopes
// and subject it was issued to.
func (c *oauthClient) fits(scheme, subject string) func(context.Context, *storage.Record, bool) (bool, error) {
	return func(_ context.Context, rec *storage.Record, exists bool) (bool, error) {
		var have string
		rec.GetExtra("auth_subject", &have)
		if !exists {
			rec.Scheme, rec.ClientID, rec.TokenURL, rec.Scopes = scheme, c.clientID, c.tokenURL, c.scopes
			return true, rec.SetExtra("auth_subject", nilIfEmpty(subject))
		}
		var differs string
		switch {
		case rec.Scheme != scheme:
			differs = "scheme"
		case rec.ClientID != c.clientID:
			differs = "client_id"
		case rec.TokenURL != c.tokenURL:
			differs = "token_url"
		case !slices.Equal(rec.Scopes, c.scopes):
			differs = "scopes"
		case have != subject:
			differs = "username"
		default:
			return false, nil
		}
		return false, fmt.Errorf("%w: the stored %s differs from this configuration's", ErrProfileInUse, differs)
	}
}

// clientSecrets are the forms a client secret takes on the wire: itself,
// and inside an RFC 6749 §2.3.1 Basic header, where id and secret are
// form-urlencoded before base64.
func clientSecrets(clientID string, clientSecret secret.Secret) []secret.Secret {
	if clientSecret == "" {
		return nil
	}
	basic := base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(clientID) + ":" + url.QueryEscape(clientSecret.Reveal())))
	return []secret.Secret{clientSecret, secret.Secret(basic)}
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
