package auth_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tokencache/tokencache/auth"
	"github.com/tokencache/tokencache/httpauth"
)

func TestRegistry(t *testing.T) {
	want := []string{"api_key", "basic", "bearer", "cognito_srp", "jwt_es512", "none", "oauth2_client_credentials",
		"oauth2_password", "oauth2_refresh_token", "sl1", "tc_hmac", "tc_token", "token_endpoint"}
	for _, name := range want {
		if !slices.Contains(auth.Schemes(), name) {
			t.Errorf("scheme %q not registered; have %v", name, auth.Schemes())
		}
	}
	if _, err := auth.New("kerberos", nil, auth.Env{}); !errors.Is(err, auth.ErrUnknownScheme) {
		t.Errorf("unknown scheme: %v", err)
	}

	// A scheme of one's own, as seed 004's @add_auth adds one (once: the
	// registry lives as long as the process, and -count=N reruns tests).
	registerOnce.Do(func() { auth.Register("test_custom", customFactory) })
	a, err := auth.New("test_custom", auth.Params{"value": "v"}, auth.Env{})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "http://x", nil)
	a.Authorize(t.Context(), req)
	if req.Header.Get("X-Custom") != "v" {
		t.Error("custom scheme not applied")
	}
	defer func() {
		if recover() == nil {
			t.Error("registering a name twice did not panic")
		}
	}()
	auth.Register("basic", func(auth.Params, auth.Env) (httpauth.Authorizer, error) { return auth.None{}, nil })
}

var registerOnce sync.Once

func customFactory(p auth.Params, env auth.Env) (httpauth.Authorizer, error) {
	v, _ := p["value"].(string)
	if v == "" {
		return nil, &auth.OptionError{Scheme: "test_custom", Option: "value", Reason: "required"}
	}
	return httpauth.AuthorizerFunc(func(_ context.Context, r *http.Request) error {
		r.Header.Set("X-Custom", v)
		return nil
	}), nil
}

func TestOptionConversions(t *testing.T) {
	for _, p := range []auth.Params{
		{"token_url": "http://x/t", "client_id": "c", "client_secret": "s", "scopes": []any{"a", "b"}},
		{"token_url": "http://x/t", "client_id": "c", "client_secret": "s", "scopes": "a,b"},
		{"token_url": "http://x/t", "client_id": "c", "client_secret": "s", "params": `{"audience":"x"}`, "client_auth": "post_body"},
	} {
		a, err := auth.New("oauth2_client_credentials", p, auth.Env{})
		if err != nil {
			t.Errorf("%v: %v", p, err)
			continue
		}
		a.(*auth.TokenAuthorizer).Close()
	}
	for _, d := range []any{"90s", 90, 90.0, "90"} {
		a, err := auth.New("token_endpoint", auth.Params{"url": "http://x/login", "retry_wait": d, "static_ttl": "true"}, auth.Env{})
		if err != nil {
			t.Errorf("retry_wait %v: %v", d, err)
			continue
		}
		a.(*auth.TokenAuthorizer).Close()
	}
}

// A body that cannot be replayed is not retried after a 401.
func TestTransportNoReplay(t *testing.T) {
	api := newRecorder(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusUnauthorized) })
	renewed := 0
	a := renewer{func(context.Context, *http.Request) (bool, error) { renewed++; return true, nil }}
	req, _ := http.NewRequest("POST", api.URL, io.NopCloser(strings.NewReader("once"))) // no GetBody
	resp, err := (&httpauth.Transport{Authorizer: a}).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || api.count() != 1 || renewed != 0 {
		t.Errorf("status %d, %d requests, %d renewals; want 401, 1, 0", resp.StatusCode, api.count(), renewed)
	}
	// An authorization failure closes the body and sends nothing.
	failing := httpauth.AuthorizerFunc(func(context.Context, *http.Request) error { return auth.ErrInvalidClient })
	body := &closeRecorder{Reader: strings.NewReader("x")}
	req, _ = http.NewRequest("POST", api.URL, body)
	if _, err := (&httpauth.Transport{Authorizer: failing}).RoundTrip(req); !errors.Is(err, auth.ErrInvalidClient) || !body.closed || api.count() != 1 {
		t.Errorf("err %v, closed %v, %d requests", err, body.closed, api.count())
	}
}

type renewer struct {
	renew func(context.Context, *http.Request) (bool, error)
}

func (renewer) Authorize(_ context.Context, r *http.Request) error {
	r.Header.Set("Authorization", "x")
	return nil
}
func (r renewer) Renew(ctx context.Context, req *http.Request) (bool, error) {
	return r.renew(ctx, req)
}

type closeRecorder struct {
	io.Reader
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }
