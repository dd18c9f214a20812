package credentials_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/memory"
)

// deviceFixture is an oauthtest server polled every second, and a profile
// of a public client (no secret) that holds an older grant.
type deviceFixture struct {
	srv   *oauthtest.Server
	store *storage.Store
	c     *credentials.Credentials
	oldRT string
}

func newDeviceFixture(t *testing.T, clientSecret string) *deviceFixture {
	t.Helper()
	t.Parallel()
	srv := oauthtest.NewServer(oauthtest.Options{Rotate: true})
	t.Cleanup(srv.Close)
	srv.AddClient("device-app", clientSecret)
	srv.SetDeviceFlow(time.Second, time.Minute)
	st := storage.NewNamedStore("memory:"+t.Name(), memory.New(nil))
	oldRT := srv.IssueRefreshToken("device-app")
	if _, _, err := st.Update(context.Background(), "p", func(r *storage.Record) error {
		r.ClientID, r.ClientSecret, r.TokenURL, r.Scopes = "device-app", secret.Secret(clientSecret), srv.TokenURL(), []string{"read"}
		r.Seed(oldRT)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	c, err := credentials.New(credentials.Config{Store: st, Profile: "p", JournalDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &deviceFixture{srv: srv, store: st, c: c, oldRT: oldRT}
}

func (f *deviceFixture) record(t *testing.T) *storage.Record {
	t.Helper()
	r, _, err := f.store.Load(context.Background(), "p")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// afterPolls runs fn once the server answered n polls for userCode.
func (f *deviceFixture) afterPolls(t *testing.T, userCode string, n int, fn func()) {
	go func() {
		deadline := time.Now().Add(30 * time.Second)
		for len(f.srv.DevicePolls(userCode)) < n && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		fn()
	}()
}

// jwtClaims decodes the claims of an oauthtest access token (a JWT).
func jwtClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	var m map[string]any
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func results(polls []oauthtest.DevicePoll) []string {
	var r []string
	for _, p := range polls {
		r = append(r, p.Result)
	}
	return r
}

func TestDeviceGrantPublicClient(t *testing.T) {
	f := newDeviceFixture(t, "")
	ctx := context.Background()
	da, err := f.c.AuthorizeDevice(ctx, f.srv.DeviceAuthorizationURL())
	if err != nil {
		t.Fatal(err)
	}
	if da.UserCode == "" || da.VerificationURI != f.srv.VerificationURL() || da.VerificationURIComplete == "" ||
		da.Interval != time.Second || time.Until(da.Expiry) < 50*time.Second {
		t.Fatalf("device authorization: %+v", da)
	}
	f.afterPolls(t, da.UserCode, 1, func() { f.srv.ApproveDevice(da.UserCode) })
	tok, err := f.c.ExchangeDevice(ctx, da)
	if err != nil {
		t.Fatal(err)
	}
	// Pending until the approval (one poll, unless the machine is slow
	// enough for the approval to miss the next), then the tokens.
	if got := strings.Join(results(f.srv.DevicePolls(da.UserCode)), " "); !strings.HasPrefix(got, "authorization_pending ") ||
		!strings.HasSuffix(got, " ok") || strings.Count(got, " ") != strings.Count(got, "authorization_pending") {
		t.Errorf("polls %q, want pending until the approval, then ok", got)
	}
	rec := f.record(t)
	if !f.srv.Valid(tok.AccessToken.Reveal()) || rec.AccessToken != tok.AccessToken || !f.srv.ValidRefresh(rec.RefreshToken.Reveal()) {
		t.Fatal("the device grant's tokens were not stored")
	}
	if rec.RefreshToken.Reveal() == f.oldRT || rec.ClientSecret != "" {
		t.Error("the new grant did not replace the old one, or a secret appeared")
	}
	if claims := jwtClaims(t, tok.AccessToken.Reveal()); claims["scope"] != "read" || claims["client_id"] != "device-app" {
		t.Errorf("access token claims %v: want the profile's client and scope", claims)
	}
	// The stored grant refreshes like any other (public client, rotation).
	if _, err := f.c.Refresh(ctx, tok); err != nil {
		t.Fatalf("refresh after the device grant: %v", err)
	}
	// A device code is good for one grant.
	if _, err := f.c.ExchangeDevice(ctx, da); !errors.Is(err, credentials.ErrInvalidGrant) {
		t.Errorf("second exchange of the code: %v, want invalid_grant", err)
	}
}

func TestDeviceGrantConfidentialClient(t *testing.T) {
	f := newDeviceFixture(t, "device-secret")
	ctx := context.Background()
	da, err := f.c.AuthorizeDevice(ctx, f.srv.DeviceAuthorizationURL())
	if err != nil {
		t.Fatal(err)
	}
	f.srv.ApproveDevice(da.UserCode)
	if _, err := f.c.ExchangeDevice(ctx, da); err != nil {
		t.Fatal(err)
	}
	if rec := f.record(t); !f.srv.ValidRefresh(rec.RefreshToken.Reveal()) || rec.ClientSecret.Reveal() != "device-secret" {
		t.Fatal("the device grant was not stored with the client")
	}
}

func TestDeviceGrantDenied(t *testing.T) {
	f := newDeviceFixture(t, "")
	ctx := context.Background()
	da, err := f.c.AuthorizeDevice(ctx, f.srv.DeviceAuthorizationURL())
	if err != nil {
		t.Fatal(err)
	}
	f.afterPolls(t, da.UserCode, 1, func() { f.srv.DenyDevice(da.UserCode) })
	_, err = f.c.ExchangeDevice(ctx, da)
	if !errors.Is(err, credentials.ErrAccessDenied) || errors.Is(err, credentials.ErrDeviceCodeExpired) {
		t.Fatalf("denied: %v, want ErrAccessDenied", err)
	}
	if rec := f.record(t); rec.RefreshToken.Reveal() != f.oldRT {
		t.Error("a denied authorization changed the stored grant")
	}
}

func TestDeviceGrantExpired(t *testing.T) {
	f := newDeviceFixture(t, "")
	f.srv.SetDeviceFlow(time.Second, 2*time.Second)
	ctx := context.Background()
	da, err := f.c.AuthorizeDevice(ctx, f.srv.DeviceAuthorizationURL())
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	_, err = f.c.ExchangeDevice(ctx, da)
	if !errors.Is(err, credentials.ErrDeviceCodeExpired) {
		t.Fatalf("unapproved code: %v, want ErrDeviceCodeExpired", err)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("gave up after %v; the code lived 2s", took)
	}
	if rec := f.record(t); rec.RefreshToken.Reveal() != f.oldRT {
		t.Error("an expired authorization changed the stored grant")
	}
}

// TestDeviceGrantSlowDown: after slow_down the client waits five seconds
// more between polls; the server would answer slow_down again otherwise.
func TestDeviceGrantSlowDown(t *testing.T) {
	f := newDeviceFixture(t, "")
	ctx := context.Background()
	da, err := f.c.AuthorizeDevice(ctx, f.srv.DeviceAuthorizationURL())
	if err != nil {
		t.Fatal(err)
	}
	f.srv.SlowDownDevice(da.UserCode)
	f.afterPolls(t, da.UserCode, 1, func() { f.srv.ApproveDevice(da.UserCode) })
	if _, err := f.c.ExchangeDevice(ctx, da); err != nil {
		t.Fatal(err)
	}
	polls := f.srv.DevicePolls(da.UserCode)
	if got := results(polls); len(got) != 2 || got[0] != oauthtest.PollSlowDown || got[1] != oauthtest.PollOK {
		t.Fatalf("polls %v, want slow_down then ok", got)
	}
	if gap := polls[1].At.Sub(polls[0].At); gap < 6*time.Second {
		t.Errorf("polled again %v after slow_down, want at least interval + 5s", gap)
	}
}

func TestDeviceGrantBoundedByContext(t *testing.T) {
	f := newDeviceFixture(t, "")
	da, err := f.c.AuthorizeDevice(context.Background(), f.srv.DeviceAuthorizationURL())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	if _, err := f.c.ExchangeDevice(ctx, da); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("exchange past its context: %v", err)
	}
}

func TestDeviceAuthorizationWrongURL(t *testing.T) {
	f := newDeviceFixture(t, "")
	ctx := context.Background()
	for _, u := range []string{f.srv.URL + "/nowhere", f.srv.URL + "/"} {
		if _, err := f.c.AuthorizeDevice(ctx, u); !errors.Is(err, credentials.ErrNotTokenEndpoint) {
			t.Errorf("%s: %v, want ErrNotTokenEndpoint", u, err)
		}
	}
	if _, err := f.c.AuthorizeDevice(ctx, "ftp://example.com/device"); err == nil {
		t.Error("an ftp:// device authorization URL was accepted")
	}
	// The token endpoint is no device authorization endpoint: it answers
	// an OAuth error, which stays one.
	if _, err := f.c.AuthorizeDevice(ctx, f.srv.TokenURL()); err == nil || errors.Is(err, credentials.ErrNotTokenEndpoint) {
		t.Errorf("token URL as device URL: %v, want the server's OAuth error", err)
	}
}
