package auth_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"github.com/tokencache/tokencache/auth"
	"github.com/tokencache/tokencache/httpauth"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/memory"
)

// A scheme is chosen by name from configuration, as seed 004's
// "Authenticator Override" field does; its options are validated.
func ExampleNew() {
	var config struct {
		Auth    string      `json:"auth"`
		Options auth.Params `json:"options"`
	}
	json.Unmarshal([]byte(`{"auth": "api_key", "options": {"key": "k-123", "prefix": "ApiKey "}}`), &config)

	a, err := auth.New(config.Auth, config.Options, auth.Env{})
	if err != nil {
		fmt.Println(err)
		return
	}
	req, _ := http.NewRequest("GET", "https://api.example.com/v1/items", nil)
	a.Authorize(context.Background(), req)
	fmt.Println(req.Header.Get("X-Api-Key"))

	// A misspelled option is an error that names it, never a silent default.
	_, err = auth.New("basic", auth.Params{"username": "bob", "pasword": "x"}, auth.Env{})
	fmt.Println(err)
	// Output:
	// ApiKey k-123
	// auth: scheme "basic": option "pasword": unknown option
}

// Client-credentials tokens are cached in a store: every process that
// shares it (here, a memory store; in production Redis, SQLite, ...) uses
// one token per expiry.
func ExampleNewClientCredentials() {
	srv := oauthtest.NewServer(oauthtest.Options{})
	defer srv.Close()
	srv.AddClient("svc", "svc-secret")

	store := storage.NewStore(memory.New(nil))
	defer store.Close()
	a, err := auth.NewClientCredentials(auth.ClientCredentialsConfig{
		TokenURL:     srv.TokenURL(),
		ClientID:     "svc",
		ClientSecret: "svc-secret",
		Scopes:       []string{"read"},
	}, auth.Env{Store: store, Profile: "svc"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer a.Close()

	client := &http.Client{Transport: &httpauth.Transport{Authorizer: a}}
	for range 3 {
		resp, err := client.Get(srv.ResourceURL())
		if err != nil {
			fmt.Println(err)
			return
		}
		resp.Body.Close()
		fmt.Println(resp.Status)
	}
	fmt.Println("token requests:", srv.Stats().TokenCalls)
	// Output:
	// 200 OK
	// 200 OK
	// 200 OK
	// token requests: 1
}

// ThreatConnect HMAC signs the final URL, method and time, so it runs in
// the Transport, just before the request leaves. The signature below
// checks against openssl:
//
//	printf '/api/v2/owners?resultLimit=5:GET:1700000000' |
//	    openssl dgst -sha256 -hmac secret-key -binary | base64
func ExampleNewTCHMAC() {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Println(r.Header.Get("Timestamp"), r.Header.Get("Authorization"))
	}))
	defer api.Close()

	a, _ := auth.NewTCHMAC(auth.TCHMACConfig{AccessID: "12345", SecretKey: "secret-key"},
		auth.Env{Now: func() time.Time { return time.Unix(1700000000, 0) }})
	resp, err := httpauth.Client(a).Get(api.URL + "/api/v2/owners?resultLimit=5")
	if err == nil {
		resp.Body.Close()
	}
	// Output:
	// 1700000000 TC 12345:IsYsO2WhIxL8HbQX4elgArZlwM6EjE/SJW5ctb/bZCM=
}

// A secret.Masker in Env learns the secrets of every scheme given it and
// masks them in whatever a logger prints, even a raw header dump.
func Example_masker() {
	masker := secret.NewMasker()
	log := slog.New(masker.Handler(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})))
	a, _ := auth.NewBearer(auth.BearerConfig{Token: "tok-9f8e7d"}, auth.Env{Masker: masker})
	req, _ := http.NewRequest("GET", "https://api.example.com/", nil)
	a.Authorize(context.Background(), req)

	log.Info("sending", "headers", req.Header)
	// Output:
	// level=INFO msg=sending headers="map[Authorization:[Bearer *****]]"
}
