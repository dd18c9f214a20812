// Package httpauth is the one way tokencache authorizes outgoing HTTP
// requests. An Authorizer sets what a server needs on a request about to
// leave; a Renewer replaces a credential a server refused; Transport runs
// both around each request. credentials.Credentials (a token shared through
// a store) and every scheme of package auth are Authorizers, so one
// Transport serves them all, as x/oauth2's Transport serves every
// TokenSource.
package httpauth

import (
	"context"
	"io"
	"net/http"
	"sync"

	"github.com/tokencache/tokencache/internal/httpsafe"
)

// Authorizer adds credentials to an outgoing request. Implementations must
// be safe for concurrent use. Authorize may change req's headers and URL,
// so callers pass a request they own (Transport passes a clone).
type Authorizer interface {
	Authorize(ctx context.Context, req *http.Request) error
}

// AuthorizerFunc adapts a function to Authorizer.
type AuthorizerFunc func(ctx context.Context, req *http.Request) error

// Authorize calls f.
func (f AuthorizerFunc) Authorize(ctx context.Context, req *http.Request) error { return f(ctx, req) }

// Renewer is implemented by Authorizers whose credential can be renewed on
// demand, such as tokens from an endpoint. Transport calls Renew with a
// request the server answered 401 and retries it when Renew reports that a
// different credential is now current. Renew replaces the credential only
// if refused still carries the current one, so a burst of 401s for one
// token costs one renewal.
type Renewer interface {
	Renew(ctx context.Context, refused *http.Request) (retry bool, err error)
}

// Transport is an http.RoundTripper that authorizes each request just
// before it is sent, on a clone, as RoundTrippers must not change the
// caller's request. When the server answers 401 and the Authorizer is a
// Renewer, it renews the credential once and retries a request whose body
// can be replayed.
//
// It authorizes only requests for the origins it is meant for: Origins, or
// when that is empty the origin of the first request it sends. A server
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
