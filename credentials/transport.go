package credentials

import (
	"context"
	"net/http"

	"golang.org/x/oauth2"

	"github.com/tokencache/tokencache/httpauth"
)

// TokenSource returns an oauth2.TokenSource over c, for code built on
// golang.org/x/oauth2. Its tokens come from the shared cache: wrapping it
// in oauth2.ReuseTokenSource adds nothing.
func (c *Credentials) TokenSource(ctx context.Context) oauth2.TokenSource {
	return tokenSource{ctx: ctx, c: c}
}

type tokenSource struct {
	ctx context.Context
	c   *Credentials
}

func (s tokenSource) Token() (*oauth2.Token, error) {
	t, err := s.c.Token(s.ctx)
	if err != nil {
		return nil, err
	}
	return &oauth2.Token{AccessToken: t.AccessToken.Reveal(), TokenType: t.TokenType, Expiry: t.ValidUntil()}, nil
}

// Authorize implements httpauth.Authorizer: it sets the Authorization
// header to the current access token.
func (c *Credentials) Authorize(ctx context.Context, req *http.Request) error {
	tok, err := c.Token(ctx)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", tok.AuthorizationHeader())
	return nil
}

// Renew implements httpauth.Renewer: a server refused the token refused
// carried. If that is still the current token it is refreshed, once for
// any number of such reports and at most once per MinRejectInterval (see
// Rejected); retry says whether a different token is now current.
func (c *Credentials) Renew(ctx context.Context, refused *http.Request) (retry bool, err error) {
	cur, err := c.Token(ctx)
	if err != nil {
		return false, err
	}
	if refused.Header.Get("Authorization") != cur.AuthorizationHeader() {
		return true, nil // already replaced since refused was sent
	}
	fresh, err := c.Rejected(ctx, cur)
	if err != nil {
		return false, err
	}
	return fresh.AccessToken != cur.AccessToken, nil
}

// Client returns an *http.Client that authorizes its requests with c's
// token (httpauth.Client): on a 401 it refreshes once and retries, and it
// sends the token only to the origin of its first request.
func (c *Credentials) Client() *http.Client { return httpauth.Client(c) }
