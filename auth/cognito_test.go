package auth_test

import (
	"encoding/base64"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokencache/tokencache/auth"
	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/httpauth"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/memory"
)

func cognitoParams(srv *oauthtest.CognitoServer, client, secret, user, password string) auth.Params {
	p := auth.Params{"user_pool_id": srv.PoolID, "endpoint": srv.URL, "client_id": client,
		"username": user, "password": password}
	if secret != "" {
		p["client_secret"] = secret
	}
	return p
}

func newCognito(t *testing.T, p auth.Params, env auth.Env) httpauth.Authorizer {
	t.Helper()
	a, err := auth.New("cognito_srp", p, env)
	if err != nil {
		t.Fatal(err)
	}
	closeAuth(t, a)
	return a
}

func bearerOf(t *testing.T, a httpauth.Authorizer) (string, error) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://api.example/x", nil)
	if err := a.Authorize(t.Context(), req); err != nil {
		return "", err
	}
	tok, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	if !ok {
		t.Fatalf("Authorization header %q is not a bearer token", req.Header.Get("Authorization"))
	}
	return tok, nil
}

// TestCognitoSRPLogin: seed 003's SrpAuthorizer "handles the
// authorization negotiation using the SRP (Secure Remote Password)
// protocol", for app clients with and without a secret, and sends the
// access token or, asked to, the id token.
func TestCognitoSRPLogin(t *testing.T) {
	srv := oauthtest.NewCognitoServer(oauthtest.CognitoOptions{})
	t.Cleanup(srv.Close)
	srv.AddClient("public", "")
	srv.AddClient("confidential", "s3cr3t-client")
	srv.AddUser("alice", "Correct horse 1!")
	for _, tc := range []struct{ client, secret, token, use string }{
		{"public", "", "", "access"},
		{"confidential", "s3cr3t-client", "", "access"},
		{"confidential", "s3cr3t-client", "id", "id"},
	} {
		p := cognitoParams(srv, tc.client, tc.secret, "alice", "Correct horse 1!")
		if tc.token != "" {
			p["token"] = tc.token
		}
		tok, err := bearerOf(t, newCognito(t, p, auth.Env{}))
		if err != nil {
			t.Fatalf("%s: %v", tc.client, err)
		}
		if !srv.Valid(tok) {
			t.Errorf("%s: the server does not accept the token sent", tc.client)
		}
		if !strings.Contains(claimsOf(t, tok), `"token_use":"`+tc.use+`"`) {
			t.Errorf("%s: sent %s, want the %s token", tc.client, claimsOf(t, tok), tc.use)
		}
	}
	if st := srv.Stats(); st.Logins != 3 || st.Failures != 0 {
		t.Errorf("stats %+v; want 3 logins and no failures", st)
	}
}

// TestCognitoSRPRefusals: a wrong password, an unknown user, a wrong
// client secret and an unknown client each fail with the error the seed
// names for it (InvalidCredentialsError, InvalidClientError), and the
// password never shows in the error.
func TestCognitoSRPRefusals(t *testing.T) {
	srv := oauthtest.NewCognitoServer(oauthtest.CognitoOptions{})
	t.Cleanup(srv.Close)
	srv.AddClient("confidential", "s3cr3t-client")
	srv.AddUser("alice", "Correct horse 1!")
	for _, tc := range []struct {
		name                         string
		client, secret, user, passwd string
		want                         error
		code                         string
	}{
		{"wrong password", "confidential", "s3cr3t-client", "alice", "Wrong horse 1!", auth.ErrInvalidCredentials, "NotAuthorizedException"},
		{"unknown user", "confidential", "s3cr3t-client", "bob", "Correct horse 1!", auth.ErrInvalidCredentials, "UserNotFoundException"},
		{"wrong client secret", "confidential", "not-the-secret", "alice", "Correct horse 1!", auth.ErrInvalidClient, "NotAuthorizedException"},
		{"unknown client", "nobody", "not-a-real-secret", "alice", "Correct horse 1!", auth.ErrInvalidClient, "ResourceNotFoundException"},
	} {
		_, err := bearerOf(t, newCognito(t, cognitoParams(srv, tc.client, tc.secret, tc.user, tc.passwd), auth.Env{}))
		var ae *auth.AuthorizationError
		switch {
		case !errors.Is(err, tc.want):
			t.Errorf("%s: %v; want %v", tc.name, err, tc.want)
		case !errors.As(err, &ae) || ae.Code != tc.code || ae.StatusCode != 400:
			t.Errorf("%s: %#v; want an AuthorizationError with status 400 and code %s", tc.name, err, tc.code)
		case strings.Contains(err.Error(), tc.passwd) || strings.Contains(err.Error(), tc.secret):
			t.Errorf("%s: the error shows a secret: %v", tc.name, err)
		}
	}
	if st := srv.Stats(); st.Logins != 0 {
		t.Errorf("%d logins succeeded; want none", st.Logins)
	}
}

// TestCognitoSRPManyCredentials logs in 200 random users with random
// passwords and salts, a fifth of them with a wrong password. Cognito's
// integer encoding adds or drops a byte for about one value in two (a
// salt, A, B, S or u whose top bit is set, or with leading zero bytes),
// so an encoding mistake fails many of these logins, not one in 256.
func TestCognitoSRPManyCredentials(t *testing.T) {
	srv := oauthtest.NewCognitoServer(oauthtest.CognitoOptions{})
	t.Cleanup(srv.Close)
	srv.AddClient("confidential", "s3cr3t-client")
	rnd := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	for i, c := range randomCognitoUsers(rnd, 200) {
		srv.AddUserSalt(c.Username, c.Password, c.salt)
		passwd := c.Password
		if c.Wrong {
			passwd += "x"
		}
		_, err := bearerOf(t, newCognito(t, cognitoParams(srv, "confidential", "s3cr3t-client", c.Username, passwd), auth.Env{}))
		if c.Wrong != errors.Is(err, auth.ErrInvalidCredentials) || !c.Wrong && err != nil {
			t.Errorf("case %d (user %q, salt %x, wrong password %v): %v", i, c.Username, c.salt, c.Wrong, err)
		}
	}
}

// cognitoCase is one user of the interoperability tests.
type cognitoCase struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Wrong    bool   `json:"-"` // log in with a wrong password
	Refresh  bool   `json:"refresh"`
	salt     []byte
}

// randomCognitoUsers makes n users with names and passwords of mixed
// scripts and lengths, and salts of 1 to 32 bytes, a third of them with a
// leading zero byte and a third with the top bit set.
func randomCognitoUsers(rnd *rand.Rand, n int) []cognitoCase {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+=,.@-_!#$%^&*()é世界ß"
	runes := []rune(alphabet)
	word := func(min, max int) string {
		var b strings.Builder
		for range min + rnd.IntN(max-min+1) {
			b.WriteRune(runes[rnd.IntN(len(runes))])
		}
		return b.String()
	}
	out := make([]cognitoCase, n)
	for i := range out {
		salt := make([]byte, 1+rnd.IntN(32))
		for j := range salt {
			salt[j] = byte(rnd.Uint32())
		}
		switch i % 3 {
		case 0:
			salt[0] = 0
		case 1:
			salt[0] |= 0x80
		}
		out[i] = cognitoCase{Username: word(1, 3) + "-" + strings.Repeat("0", i%3) + word(1, 20), Password: word(8, 40),
			Wrong: i%5 == 4, Refresh: i%10 == 0, salt: salt}
	}
	return out
}

// claimsOf returns the payload of a JWT, as text.
func claimsOf(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCognitoSRPRenewal: tokens are renewed with the refresh token
// (REFRESH_TOKEN_AUTH) without a new password proof, and when the pool
// no longer accepts the refresh token the user logs in again.
func TestCognitoSRPRenewal(t *testing.T) {
	srv := oauthtest.NewCognitoServer(oauthtest.CognitoOptions{AccessTTL: time.Hour})
	t.Cleanup(srv.Close)
	srv.AddClient("confidential", "s3cr3t-client")
	srv.AddUser("alice", "Correct horse 1!")
	st := storage.NewStore(memory.New(nil))
	t.Cleanup(func() { st.Close() })
	a := newCognito(t, cognitoParams(srv, "confidential", "s3cr3t-client", "alice", "Correct horse 1!"), auth.Env{Store: st, Profile: "alice"})
	ta := a.(*auth.TokenAuthorizer)

	first, err := ta.Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	rec, _, err := st.Load(t.Context(), "alice")
	if err != nil || rec.RefreshToken == "" {
		t.Fatalf("stored record %v, %v: want the refresh token stored", rec, err)
	}
	second, err := ta.Credentials().Refresh(t.Context(), first)
	if err != nil {
		t.Fatal(err)
	}
	if s := srv.Stats(); s.Logins != 1 || s.Refreshes != 1 {
		t.Fatalf("after one renewal: %+v; want 1 login and 1 refresh", s)
	}
	if second.AccessToken == first.AccessToken || !srv.Valid(second.AccessToken.Reveal()) {
		t.Fatal("the renewal did not yield a new valid token")
	}
	after, _, _ := st.Load(t.Context(), "alice")
	if after.RefreshToken != rec.RefreshToken {
		t.Error("the refresh token changed though Cognito returned none")
	}

	srv.RevokeRefresh(rec.RefreshToken.Reveal())
	third, err := ta.Credentials().Refresh(t.Context(), second)
	if err != nil {
		t.Fatal(err)
	}
	if s := srv.Stats(); s.Logins != 2 || s.Refreshes != 1 {
		t.Fatalf("after a revoked refresh token: %+v; want a second login", s)
	}
	if !srv.Valid(third.AccessToken.Reveal()) {
		t.Fatal("the new login's token is not valid")
	}
	if now, _, _ := st.Load(t.Context(), "alice"); now.RefreshToken == rec.RefreshToken || now.RefreshToken == "" {
		t.Error("the new login's refresh token was not stored")
	}
}

// TestCognitoSRPUnreachable: a refused connection is an authorization
// error (seed 003: "AuthorizationError ... cannot be completed for
// unknown reasons"), with status 0, that keeps the cause.
func TestCognitoSRPUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := auth.Params{"user_pool_id": "us-east-1_Pool", "endpoint": "http://" + addr + "/", "client_id": "c",
		"username": "alice", "password": "pw-not-shown"}
	_, err = bearerOf(t, newCognito(t, p, auth.Env{Credentials: credentials.Config{MaxRetries: -1}}))
	var ae *auth.AuthorizationError
	if !errors.As(err, &ae) || ae.StatusCode != 0 || !errors.Is(err, auth.ErrUnreachable) {
		t.Fatalf("%#v; want an AuthorizationError with status 0 matching ErrUnreachable", err)
	}
	if strings.Contains(err.Error(), "pw-not-shown") {
		t.Error("the error shows the password")
	}
}

// TestCognitoSRPReplicas runs 6 replicas, each its own Credentials on its
// own connection to one shared store, with 20 goroutines each, over three
// token lifetimes: the pool sees one SRP login in all, then one refresh
// per lifetime, and every token sent is valid.
func TestCognitoSRPReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for several seconds")
	}
	const (
		replicas   = 6
		goroutines = 20
		ttl        = 2 * time.Second
		renewAhead = 500 * time.Millisecond
		run        = 3*(ttl-renewAhead) - 250*time.Millisecond
	)
	srv := oauthtest.NewCognitoServer(oauthtest.CognitoOptions{AccessTTL: ttl, Latency: 20 * time.Millisecond})
	t.Cleanup(srv.Close)
	srv.AddClient("confidential", "s3cr3t-client")
	srv.AddUser("svc-user", "Correct horse 1!")
	p := cognitoParams(srv, "confidential", "s3cr3t-client", "svc-user", "Correct horse 1!")
	storeName := t.Name() + "/" + time.Now().Format(time.RFC3339Nano)
	var authorizers []httpauth.Authorizer
	for range replicas {
		st := storage.NewStore(memory.New(&memory.Options{Name: storeName}))
		t.Cleanup(func() { st.Close() })
		authorizers = append(authorizers, newCognito(t, p, auth.Env{Store: st, Profile: "svc",
			Credentials: credentials.Config{Skew: 300 * time.Millisecond, RenewAhead: renewAhead,
				LeaseTTL: 3 * time.Second, PollInterval: 20 * time.Millisecond}}))
	}
	var (
		mu      sync.Mutex
		tokens  = map[string]bool{}
		invalid int
	)
	start := time.Now()
	deadline := start.Add(run)
	var wg sync.WaitGroup
	for _, a := range authorizers {
		for range goroutines {
			wg.Go(func() {
				for time.Now().Before(deadline) {
					tok, err := bearerOf(t, a)
					if err != nil {
						t.Error(err)
						return
					}
					ok := srv.Valid(tok)
					mu.Lock()
					tokens[tok] = true
					if !ok {
						invalid++
					}
					mu.Unlock()
					time.Sleep(5 * time.Millisecond)
				}
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	time.Sleep(100 * time.Millisecond)
	s := srv.Stats()
	t.Logf("%d replicas x %d goroutines in %v: %d logins, %d refreshes, %d distinct tokens sent",
		replicas, goroutines, elapsed.Round(time.Millisecond), s.Logins, s.Refreshes, len(tokens))
	lifetimes := int64(elapsed/(ttl-renewAhead)) + 1
	if s.Logins != 1 {
		t.Errorf("%d SRP logins; want 1 shared by all replicas", s.Logins)
	}
	if calls := s.Logins + s.Refreshes; calls < 3 || calls > lifetimes {
		t.Errorf("%d logins and refreshes in %v; want one per lifetime: 3..%d", calls, elapsed, lifetimes)
	}
	if int64(len(tokens)) != s.Logins+s.Refreshes {
		t.Errorf("%d tokens issued but %d sent: a replica obtained a token nobody used", s.Logins+s.Refreshes, len(tokens))
	}
	if invalid > 0 || s.Failures > 0 {
		t.Errorf("%d requests carried a token the pool rejects; %d calls failed", invalid, s.Failures)
	}
}
