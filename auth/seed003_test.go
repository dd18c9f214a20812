package auth_test

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/tokencache/tokencache/auth"
	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/oauthtest"
)

// Seed 003 (en_auth), Authorizer.__call__: "The function takes the request
// from the library and adds the Authorization header, as well as the
// X-Api-Key header if it was provided in the client information."
func TestClientCredentialsAPIKey(t *testing.T) {
	srv := oauthtest.NewServer(oauthtest.Options{})
	t.Cleanup(srv.Close)
	srv.AddClient(cid, csecret)
	for _, tc := range []struct {
		name           string
		params         auth.Params
		header, wantKV string
	}{
		{"no api key", auth.Params{}, "X-Api-Key", ""},
		{"api key", auth.Params{"api_key": "k-123"}, "X-Api-Key", "k-123"},
		{"api key elsewhere", auth.Params{"api_key": "k-456", "api_key_header": "X-Gateway-Key"}, "X-Gateway-Key", "k-456"},
	} {
		p := auth.Params{"token_url": srv.TokenURL(), "client_id": cid, "client_secret": csecret}
		for k, v := range tc.params {
			p[k] = v
		}
		a, err := auth.New("oauth2_client_credentials", p, auth.Env{})
		if err != nil {
			t.Fatal(err)
		}
		closeAuth(t, a)
		tok, err := bearerOf(t, a)
		if err != nil {
			t.Fatal(tc.name, err)
		}
		if !srv.Valid(tok) {
			t.Errorf("%s: the Authorization header carries no valid token", tc.name)
		}
		req := authorized(t, a)
		if got := req.Header.Get(tc.header); got != tc.wantKV {
			t.Errorf("%s: %s = %q; want %q", tc.name, tc.header, got, tc.wantKV)
		}
	}
	if _, err := auth.New("oauth2_client_credentials", auth.Params{"token_url": srv.TokenURL(), "client_id": cid,
		"client_secret": csecret, "api_key_header": "X-Api-Key"}, auth.Env{}); !isOptionError(err, "api_key_header") {
		t.Errorf("api_key_header without api_key: %v; want an OptionError", err)
	}
}

// Seed 003: "exception InvalidClientError(client_info): This exception is
// raised when the client information provided is not valid for
// authentication/authorization. Parameters: client_info (ClientInfo) – The
// client information that caused the problem." The error names the
// client, never its secret.
func TestInvalidClientNamesClient(t *testing.T) {
	srv := oauthtest.NewServer(oauthtest.Options{})
	t.Cleanup(srv.Close)
	srv.AddClient(cid, csecret)
	a, err := auth.New("oauth2_client_credentials", auth.Params{"token_url": srv.TokenURL(), "client_id": cid,
		"client_secret": "wrong-secret-value"}, auth.Env{})
	if err != nil {
		t.Fatal(err)
	}
	closeAuth(t, a)
	_, err = bearerOf(t, a)
	var ae *auth.AuthorizationError
	if !errors.Is(err, auth.ErrInvalidClient) || !errors.As(err, &ae) || ae.ClientID != cid {
		t.Fatalf("%#v; want an AuthorizationError for client %q matching ErrInvalidClient", err, cid)
	}
	if msg := err.Error(); !strings.Contains(msg, cid) || strings.Contains(msg, "wrong-secret-value") {
		t.Errorf("error %q: want the client id and not the secret", msg)
	}
}

// Seed 003: "exception AuthorizationError(status_code, message): This
// exception is raised when the authorization/authentication process cannot
// be completed for unknown reasons." A token endpoint that refuses the
// connection is such a reason: an AuthorizationError with status 0 that
// matches ErrUnreachable and keeps the transport's error.
func TestRefusedConnectionIsAuthorizationError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + "/token"
	ln.Close()
	a, err := auth.New("oauth2_client_credentials", auth.Params{"token_url": url, "client_id": cid, "client_secret": csecret},
		auth.Env{Credentials: credentials.Config{MaxRetries: -1}})
	if err != nil {
		t.Fatal(err)
	}
	closeAuth(t, a)
	_, err = bearerOf(t, a)
	var ae *auth.AuthorizationError
	var oe *net.OpError
	if !errors.As(err, &ae) || ae.StatusCode != 0 || !errors.Is(err, auth.ErrUnreachable) || !errors.As(err, &oe) {
		t.Fatalf("%#v; want an AuthorizationError with status 0 matching ErrUnreachable and keeping the *net.OpError", err)
	}
}
