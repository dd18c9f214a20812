package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokencache/tokencache/oauthtest"
)

// `login` starts its browser opener with a scrubbed environment
// (openerEnv), but `exec`, whose whole point is to hand a child program an
// access token and nothing more, passes it the CLI's full environment: the
// store URL (TOKENCACHE_STORE, which may carry a Redis/Postgres password)
// and PAN_CLIENT_SECRET / PAN_REFRESH_TOKEN if the shell holds them.
func TestReview2ExecChildInheritsStoreURLAndClientSecret(t *testing.T) {
	p := newIDP(t, oauthtest.Options{Rotate: true})
	store := fileURL(filepath.Join(t.TempDir(), "creds.json"))
	p.initExpired(t, store, "default")
	r := cli(t, []string{"TOKENCACHE_STORE=" + store, "PAN_CLIENT_SECRET=" + p.secret},
		"exec", "--", "env").mustSucceed(t)
	if !strings.Contains(r.stdout, "TOKENCACHE_ACCESS_TOKEN=") {
		t.Fatalf("child env lacks the token:\n%s", r.stdout)
	}
	for _, leak := range []string{"PAN_CLIENT_SECRET=", "TOKENCACHE_STORE="} {
		if strings.Contains(r.stdout, leak) {
			t.Errorf("exec's child received %s... (it needs only the access token)", leak)
		}
	}
}
