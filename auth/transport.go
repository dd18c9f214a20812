package auth

import (
	"context"
	"io"
	"net/http"
	"sync"

	"golang.org/x/oauth2"

	"github.com/tokencache/tokencache/internal/httpsafe"
)

// Transport is an http.RoundTripper that authorizes each request just
// before it is sent, on a clone, as RoundTrippers must not change the
// caller's request. When the server answers 401 and the Authorizer is a
// Renewer, it renews the credential once, if the one sent is still
// current, and retries a request whose body can be replayed.
//
// It authorizes only requests for the origins it is meant for: Origins,
// or when that is empty the origin of the first request it sends. A server
// that redirects elsewhere, or a link the client follows, gets the request
// without the credential.
type Transport struct {
	Authorizer Authorizer
	// Base does the HTTP; default http.DefaultTransport.
	Base http.RoundTripper
	// Origins are the URLs (scheme, host and port count) whose requests
	// are authorized; default: the first request's origin only.
	Origins []string

	once  sync.Once
	guard *httpsafe.Origins
}

// Client returns an *http.Client whose requests a authorizes.
func Client(a Authorizer) *http.Client {
	return &http.Client{Transport: &Transport{Authorizer: a}}
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.once.Do(func() { t.guard = httpsafe.NewOrigins(t.Origins) })
	if !t.guard.Allows(req.URL) {
		return t.base().RoundTrip(req)
	}
	ctx := req.Context()
	sent := req.Clone(ctx)
	if err := t.Authorizer.Authorize(ctx, sent); err != nil {
		closeBody(req)
		return nil, err
	}
	resp, err := t.base().RoundTrip(sent)
	if err != nil || resp.StatusCode != http.StatusUnauthorized || !replayable(req) {
		return resp, err
	}
	r, ok := t.Authorizer.(Renewer)
	if !ok {
		return resp, nil
	}
	if retry, err := r.Renew(ctx, sent); err != nil || !retry {
		// Nothing better to send: the server's answer stands.
		return resp, nil
	}
	again := req.Clone(ctx)
	if req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			return resp, nil
		}
		again.Body = body
	}
	if err := t.Authorizer.Authorize(ctx, again); err != nil {
		closeBody(again)
		return resp, nil
	}
	// Drain a little so the connection can be reused.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	return t.base().RoundTrip(again)
}

func (t *Transport) base() http.RoundTripper {
	if t.Base != nil {
		return t.Base
	}
	return http.DefaultTransport
}

// replayable: no body, or GetBody to make it again.
func replayable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// TokenSource returns an oauth2.TokenSource over a scheme that has a
// bearer token (Bearer, JWT and every TokenAuthorizer), or ErrNoToken.
func TokenSource(ctx context.Context, a Authorizer) (oauth2.TokenSource, error) {
	if s, ok := a.(interface {
		TokenSource(context.Context) oauth2.TokenSource
	}); ok {
		return s.TokenSource(ctx), nil
	}
	return nil, ErrNoToken
}
