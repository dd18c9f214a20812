package oauthtest_test

import (
	"context"
	"fmt"

	"golang.org/x/oauth2"

	"github.com/tokencache/tokencache/oauthtest"
)

// A rotating server with reuse detection, driven by golang.org/x/oauth2.
func Example() {
	s := oauthtest.NewServer(oauthtest.Options{Rotate: true})
	defer s.Close()
	s.AddClient("app", "s3cret")
	rt := s.IssueRefreshToken("app")

	conf := &oauth2.Config{ClientID: "app", ClientSecret: "s3cret", Endpoint: s.Endpoint()}
	tok, err := conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: rt}).Token()
	if err != nil {
		panic(err)
	}
	fmt.Println("access token valid:", s.Valid(tok.AccessToken))
	fmt.Println("refresh token rotated:", tok.RefreshToken != rt)

	// Presenting the rotated token again revokes the whole family.
	_, err = conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: rt}).Token()
	fmt.Println("reuse rejected:", err != nil)
	fmt.Println("access token valid:", s.Valid(tok.AccessToken))
	fmt.Printf("%+v\n", s.Stats())
	// Output:
	// access token valid: true
	// refresh token rotated: true
	// reuse rejected: true
	// access token valid: false
	// {TokenCalls:2 RefreshCalls:2 Issued:1 ReuseDetections:1 Revocations:0 Failures:0}
}

// Fail the next token request, then let the client retry.
func ExampleServer_FailNext() {
	s := oauthtest.NewServer(oauthtest.Options{})
	defer s.Close()
	s.AddClient("app", "s3cret")
	conf := &oauth2.Config{ClientID: "app", ClientSecret: "s3cret", Endpoint: s.Endpoint()}
	rt := s.IssueRefreshToken("app")

	s.FailNext(1, oauthtest.FaultUnavailable)
	for range 2 {
		_, err := conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: rt}).Token()
		fmt.Println("error:", err != nil)
	}
	// Output:
	// error: true
	// error: false
}
