package auth_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tokencache/tokencache/auth"
	"github.com/tokencache/tokencache/httpauth"
	"github.com/tokencache/tokencache/secret"
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

func TestMaskerHandler(t *testing.T) {
	m := auth.NewMasker()
	var buf bytes.Buffer
	log := slog.New(m.Handler(slog.NewJSONHandler(&buf, nil)))
	// Attributes bound before the secret is known are masked when logged.
	early := log.With("token", "tok-1").WithGroup("g")
	m.Set("k", "tok-1")
	early.Info("msg tok-1", "nested", slog.GroupValue(slog.String("v", "x tok-1 y")), "err", errors.New("bad tok-1"))
	// Rotation: the new value is masked, and the previous one still is.
	m.Set("k", "tok-2")
	log.Info("rotated", "a", "tok-1", "b", "tok-2", "c", []byte("tok-2"), "d", struct{ S string }{"tok-2"})
	out := buf.String()
	if strings.Contains(out, "tok-1") || strings.Contains(out, "tok-2") {
		t.Errorf("unmasked:\n%s", out)
	}
	if c := strings.Count(out, secret.Mask); c != 8 {
		t.Errorf("%d masks, want 8:\n%s", c, out)
	}
	m.RemovePrefix("k")
	if m.Mask("tok-2") != "tok-2" {
		t.Error("RemovePrefix kept the secret")
	}
	var nilMasker *auth.Masker
	if nilMasker.Mask("x") != "x" || nilMasker.Handler(slog.DiscardHandler) != slog.DiscardHandler {
		t.Error("a nil Masker is not a no-op")
	}
	// The longest secret wins where one contains another.
	m.Set("short", "abc")
	m.Set("long", "abcdef")
	if got := m.Mask("xabcdefx"); got != "x"+secret.Mask+"x" {
		t.Errorf("Mask = %q", got)
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
