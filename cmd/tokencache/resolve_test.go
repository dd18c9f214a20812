package main

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/pancloud"
	"github.com/tokencache/tokencache/resolver"
	"github.com/tokencache/tokencache/storage"
)

// The CLI reads PAN_* credentials where it writes a profile (init), and
// through the same resolver as the library (pancloud.Config.Options): for
// one environment, init stores exactly the credentials pancloud.Open would
// seed. If either side changed its variables or its precedence, this fails.
func TestInitReadsPANAsTheLibrary(t *testing.T) {
	for _, env := range []map[string]string{
		{"PAN_CLIENT_ID": "lib-app", "PAN_CLIENT_SECRET": "lib-secret", "PAN_REFRESH_TOKEN": "lib-refresh", "PAN_ACCESS_TOKEN": "lib-access"},
		{"PAN_CLIENT_ID": "lib-app", "PAN_REFRESH_TOKEN": "lib-refresh"},
		{"PAN_ACCESS_TOKEN": "lib-access-only"},
	} {
		getenv := func(k string) string { return env[k] }
		lib := resolver.Resolve(pancloud.Config{Getenv: getenv}.Options())
		if lib.Source != resolver.Environment || lib.Seed == nil {
			t.Fatalf("the library did not resolve %v from the environment: %+v", keys(env), lib.Source)
		}
		store := fileURL(filepath.Join(t.TempDir(), "credentials.json"))
		var vars []string
		for k, v := range env {
			vars = append(vars, k+"="+v)
		}
		cli(t, vars, "--store", store, "init", "--token-url", "http://127.0.0.1:1/oauth2/token").mustSucceed(t)
		got := loadRecord(t, store, "default")
		if got.ClientID != lib.Seed.ClientID || got.ClientSecret != lib.Seed.ClientSecret ||
			got.RefreshToken != lib.Seed.RefreshToken || got.AccessToken != lib.Seed.AccessToken {
			t.Errorf("%v: init stored client %q (secret, refresh and access token match: %v, %v, %v); the library seeds client %q",
				keys(env), got.ClientID, got.ClientSecret == lib.Seed.ClientSecret, got.RefreshToken == lib.Seed.RefreshToken,
				got.AccessToken == lib.Seed.AccessToken, lib.Seed.ClientID)
		}
	}
}

// token, exec and refresh act on the stored profile: PAN_CLIENT_ID,
// PAN_CLIENT_SECRET, PAN_REFRESH_TOKEN and PAN_ACCESS_TOKEN neither
// replace its client, endpoint or grant nor create a profile (pancloud.Open
// would seed them: the CLI's profiles name their own endpoints, and
// variables left in a shell would apply to whichever profile is named).
func TestTokenDoesNotSeedFromPAN(t *testing.T) {
	p := newIDP(t, oauthtest.Options{Rotate: true})
	store := fileURL(filepath.Join(t.TempDir(), "credentials.json"))
	p.initExpired(t, store, "default")
	before := loadRecord(t, store, "default")
	other := []string{"PAN_CLIENT_ID=another-app", "PAN_CLIENT_SECRET=another-secret",
		"PAN_REFRESH_TOKEN=" + p.IssueRefreshToken(p.clientID), "PAN_ACCESS_TOKEN=another-access-token"}
	for _, args := range [][]string{{"token"}, {"refresh"}, {"exec", "--", "true"}} {
		r := cli(t, other, append([]string{"--store", store}, args...)...).mustSucceed(t)
		if args[0] == "token" && (!p.Valid(strings.TrimSpace(r.stdout)) || strings.Contains(r.stdout, "another-access-token")) {
			t.Fatalf("token printed %q, not a token of the stored grant", r.stdout)
		}
		after := loadRecord(t, store, "default")
		if after.ClientID != before.ClientID || after.ClientSecret != before.ClientSecret || after.TokenURL != before.TokenURL ||
			after.Lineage.Grant != before.Lineage.Grant || !p.ValidRefresh(after.RefreshToken.Reveal()) {
			t.Fatalf("%s with PAN_* set changed the profile's client, endpoint or grant", args[0])
		}
	}
	if st := p.Stats(); st.ReuseDetections != 0 {
		t.Fatalf("%d reuse detections", st.ReuseDetections)
	}

	// No profile: not found, and no store file created at the path.
	empty := filepath.Join(t.TempDir(), "none.json")
	if r := cli(t, other, "--store", fileURL(empty), "token"); r.code != exitNotFound {
		t.Fatalf("token on a missing store with PAN_* set: exit %d, stderr %q", r.code, r.stderr)
	}
	if _, err := os.Stat(empty); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("token with PAN_* set created a store at a path that had none: %v", err)
	}
	if r := cli(t, other, "--store", store, "token", "absent"); r.code != exitNotFound {
		t.Fatalf("token of a missing profile with PAN_* set: exit %d, stderr %q", r.code, r.stderr)
	}
	st, err := storage.Open(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if rec, _, err := st.Load(context.Background(), "absent"); err == nil {
		t.Fatalf("token created profile %q from PAN_*", rec.Profile)
	}
}

// keys names the variables set in env, never their values.
func keys(env map[string]string) []string {
	var ks []string
	for k := range env {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
