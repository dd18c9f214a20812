package credentials

import (
	"context"
	"io"
	"net/http"
	"sync"

	"golang.org/x/oauth2"

	"github.com/tokencache/tokencache/internal/httpsafe"
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

// Transport is an http.RoundTripper that authorizes requests with the
// credentials' access token. On a 401 it refreshes once, and only if the
// token it sent is still the current one (so a burst of 401s costs one
// refresh), then retries a request whose body can be replayed.
//
// It adds the token only to requests for the origins it is meant for:
// Origins, or when that is empty the origin of the first request it sends.
// A resource server that redirects elsewhere, or a link the client follows,
// gets the request without the token.
type Transport struct {
	Credentials *Credentials
	// Base does the HTTP; default http.DefaultTransport.
	Base http.RoundTripper
	// Origins are the URLs (scheme, host and port count) whose requests
	// get the token; default: the first request's origin only.
	Origins []string

	once  sync.Once
	guard *httpsafe.Origins
}

// Client returns an *http.Client that uses a Transport over c.
func (c *Credentials) Client() *http.Client {
	return &http.Client{Transport: &Transport{Credentials: c}}
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.once.Do(func() { t.guard = httpsafe.NewOrigins(t.Origins) })
	if !t.guard.Allows(req.URL) {
		return t.base().RoundTrip(req)
	}
	ctx := req.Context()
	tok, err := t.Credentials.Token(ctx)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	resp, err := t.base().RoundTrip(authorized(req, tok))
	if err != nil || resp.StatusCode != http.StatusUnauthorized || !replayable(req) {
		return resp, err
	}
	fresh, rerr := t.Credentials.Refresh(ctx, tok)
	if rerr != nil || fresh.AccessToken == tok.AccessToken {
		// Nothing better to send: hand back the server's answer.
		return resp, nil
	}
	retry := authorized(req, fresh)
	if req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			return resp, nil
		}
		retry.Body = body
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	return t.base().RoundTrip(retry)
}

func (t *Transport) base() http.RoundTripper {
	if t.Base != nil {
		return t.Base
	}
	return http.DefaultTransport
}

// authorized returns a copy of req with the Authorization header set;
// RoundTrippers must not modify the caller's request.
func authorized(req *http.Request, tok *Token) *http.Request {
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", tok.AuthorizationHeader())
	return r
}

// replayable: a request without a body, or with GetBody to make it again.
func replayable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}
