package auth

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
)

func init() { registerConfig("tc_token", NewTCToken) }

// TCTokenConfig configures ThreatConnect token authorization:
// the platform starts an App with tc_token and tc_token_expires, and the
// App renews the token before it expires.
//
// ThreatConnect's documentation does not give the wire format; this follows
// TcEx, and these are assumptions: the renewal is GET {BaseURL}/appAuth?expiredToken=<token>
// with no other authorization, answered by
// {"apiToken": "...", "apiTokenExpires": <Unix seconds, number or string>},
// and the header is "Authorization: TC-Token <token>". BaseURL is the API
// root the platform passes as tc_api_path, e.g. https://host/api.
type TCTokenConfig struct {
	BaseURL      string        `json:"tc_api_path"`
	Token        secret.Secret `json:"tc_token"`
	TokenExpires time.Time     `json:"tc_token_expires"`
}

const tcTokenScheme = "tc_token"

// Grant returns the renewal grant, for use in a credentials.Config of your own.
func (c TCTokenConfig) Grant(client *http.Client) (credentials.Grant, error) {
	if u, err := url.Parse(c.BaseURL); c.BaseURL == "" || err != nil || !u.IsAbs() {
		return nil, &OptionError{Scheme: tcTokenScheme, Option: "tc_api_path", Reason: "want an absolute URL"}
	}
	client = grantClient(client)
	return &tcRenewal{url: strings.TrimRight(c.BaseURL, "/") + "/appAuth", client: client, now: time.Now}, nil
}

type tcRenewal struct {
	url    string
	client *http.Client
	now    func() time.Time
}

// Obtain implements credentials.Grant: it trades the token in the record
// for its successor. The protocol calls it before the token expires
// (credentials.Config.RenewAhead), which is what the endpoint expects.
func (g *tcRenewal) Obtain(ctx context.Context, rec *storage.Record) (*credentials.Tokens, error) {
	if rec.AccessToken == "" {
		return nil, fmt.Errorf("auth: %s: no token to renew: %w", tcTokenScheme, credentials.ErrInvalidGrant)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.url+"?"+url.Values{"expiredToken": {rec.AccessToken.Reveal()}}.Encode(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	doc, err := getJSON(g.client, req)
	if err != nil {
		return nil, err
	}
	tok, _ := lookup(doc, "apiToken").(string)
	exp, ok := toTime(lookup(doc, "apiTokenExpires"))
	if tok == "" || !ok {
		return nil, malformed(req, "no apiToken and apiTokenExpires in the response")
	}
	return &credentials.Tokens{AccessToken: secret.Secret(tok), TokenType: "TC-Token", Expiry: exp}, nil
}

// NewTCToken returns an authorizer that sends the ThreatConnect token and
// renews it before it expires. With a shared env.Store, App replicas
// renew once per expiry between them.
func NewTCToken(c TCTokenConfig, env Env) (*TokenAuthorizer, error) {
	g, err := c.Grant(env.client())
	if err != nil {
		return nil, err
	}
	switch {
	case c.Token == "":
		return nil, &OptionError{Scheme: tcTokenScheme, Option: "tc_token", Reason: "required"}
	case c.TokenExpires.IsZero():
		return nil, &OptionError{Scheme: tcTokenScheme, Option: "tc_token_expires", Reason: "required"}
	}
	renewal := g.(*tcRenewal)
	fit := func(_ context.Context, rec *storage.Record, exists bool) (bool, error) {
		if exists && (rec.Scheme != tcTokenScheme || rec.TokenURL != renewal.url) {
			return false, fmt.Errorf("%w: the stored scheme or tc_api_path differs from this configuration's", ErrProfileInUse)
		}
		// The platform's token wins unless the store holds a later one,
		// renewed from it by a replica.
		if exists && !rec.Expiry.Before(c.TokenExpires) {
			return false, nil
		}
		rec.Scheme, rec.TokenURL = tcTokenScheme, renewal.url
		rec.AccessToken, rec.TokenType, rec.Expiry = c.Token, "TC-Token", c.TokenExpires
		return true, nil
	}
	return newTokenAuthorizer(env, tokenOptions{scheme: tcTokenScheme, grant: g, header: "Authorization",
		format: "TC-Token {}", ensure: fit, secrets: map[string][]secret.Secret{"tc_token": {c.Token}}})
}
