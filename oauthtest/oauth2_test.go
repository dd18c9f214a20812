package oauthtest_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"testing"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/tokencache/tokencache/oauthtest"
)

// TestOAuth2Interop drives the server with golang.org/x/oauth2, a client
// that knows nothing of it.
func TestOAuth2Interop(t *testing.T) {
	ctx := context.Background()
	s := oauthtest.NewServer(oauthtest.Options{Rotate: true})
	defer s.Close()
	s.AddClient("app", "s3cret")
	s.AddUser("alice", "wonderland")
	conf := &oauth2.Config{ClientID: "app", ClientSecret: "s3cret", Endpoint: s.Endpoint(), RedirectURL: "http://localhost/cb"}

	t.Run("refresh with rotation", func(t *testing.T) {
		rt0 := s.IssueRefreshToken("app")
		tok1, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: rt0}).Token()
		if err != nil {
			t.Fatal(err)
		}
		if !s.Valid(tok1.AccessToken) || tok1.RefreshToken == rt0 || tok1.Expiry.IsZero() {
			t.Fatalf("token %+v", tok1)
		}
		tok2, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok1.RefreshToken}).Token()
		if err != nil || tok2.RefreshToken == tok1.RefreshToken {
			t.Fatalf("second refresh: %v", err)
		}
		_, err = conf.TokenSource(ctx, &oauth2.Token{RefreshToken: rt0}).Token()
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" || re.Response.StatusCode != http.StatusBadRequest {
			t.Fatalf("reuse: err = %v", err)
		}
		if s.Valid(tok2.AccessToken) {
			t.Error("reuse did not revoke the family")
		}
	})

	t.Run("authorization code with PKCE", func(t *testing.T) {
		verifier := oauth2.GenerateVerifier()
		noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		res, err := noFollow.Get(conf.AuthCodeURL("st4te", oauth2.S256ChallengeOption(verifier)))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		loc, err := url.Parse(res.Header.Get("Location"))
		if err != nil || loc.Query().Get("state") != "st4te" {
			t.Fatalf("redirect %q: %v", res.Header.Get("Location"), err)
		}
		tok, err := conf.Exchange(ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier))
		if err != nil || !s.Valid(tok.AccessToken) || !s.ValidRefresh(tok.RefreshToken) {
			t.Fatalf("exchange: %v", err)
		}
	})

	t.Run("client credentials", func(t *testing.T) {
		cc := clientcredentials.Config{ClientID: "app", ClientSecret: "s3cret", TokenURL: s.TokenURL()}
		tok, err := cc.Token(ctx)
		if err != nil || !s.Valid(tok.AccessToken) || tok.RefreshToken != "" {
			t.Fatalf("token %+v: %v", tok, err)
		}
		// The RoundTripper path: the resource endpoint accepts it.
		res, err := cc.Client(ctx).Get(s.ResourceURL())
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("resource: %v %v", res, err)
		}
		res.Body.Close()
	})

	t.Run("password", func(t *testing.T) {
		tok, err := conf.PasswordCredentialsToken(ctx, "alice", "wonderland")
		if err != nil || !s.Valid(tok.AccessToken) {
			t.Fatal(err)
		}
	})
}
