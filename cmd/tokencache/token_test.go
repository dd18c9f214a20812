package main

import (
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokencache/tokencache/oauthtest"
)

// TestConcurrentTokenProcessesRefreshOnce is the CLI's evidence for the
// refresh protocol: 16 separate "tokencache token" processes start at once
// on a profile whose access token has expired, against a server that
// rotates refresh tokens and revokes the grant on reuse. Exactly one
// refresh reaches the server and all 16 print the token it issued.
func TestConcurrentTokenProcessesRefreshOnce(t *testing.T) {
	for _, tc := range []struct {
		name  string
		store func(dir string) string
	}{
		{"file", func(dir string) string { return fileURL(filepath.Join(dir, "credentials.json")) }},
		{"sqlite", func(dir string) string { return sqliteURL(filepath.Join(dir, "tokens.db")) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := newIDP(t, oauthtest.Options{Rotate: true})
			store := tc.store(t.TempDir())
			rt := p.initExpired(t, store, "default")
			p.ResetStats()

			const n = 16
			results := make([]result, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() { results[i] = cli(t, nil, "--store", store, "token") })
			}
			wg.Wait()

			var first string
			for i, r := range results {
				if r.code != 0 || r.stderr != "" {
					t.Fatalf("process %d: exit %d, stderr %q", i, r.code, r.stderr)
				}
				tok := strings.TrimSuffix(r.stdout, "\n")
				if tok == "" || strings.ContainsAny(tok, "\n ") {
					t.Fatalf("process %d printed %q, want one token and nothing else", i, r.stdout)
				}
				if first == "" {
					first = tok
				}
				if tok != first {
					t.Fatalf("process %d printed a different token than process 0", i)
				}
			}
			st := p.Stats()
			if st.RefreshCalls != 1 || st.TokenCalls != 1 {
				t.Errorf("%d processes made %d token calls (%d refreshes), want exactly 1", n, st.TokenCalls, st.RefreshCalls)
			}
			if st.ReuseDetections != 0 {
				t.Errorf("%d reuse detections, want 0", st.ReuseDetections)
			}
			if !p.Valid(first) {
				t.Error("the printed token is not valid at the server")
			}
			rec := loadRecord(t, store, "default")
			if rec.AccessToken.Reveal() != first || rec.RefreshToken.Reveal() == rt || !p.ValidRefresh(rec.RefreshToken.Reveal()) {
				t.Error("the store does not hold the new access token and the rotated, current refresh token")
			}
			if rec.Lease != nil {
				t.Errorf("lease left behind: %+v", rec.Lease)
			}

			// A second round finds the token valid: no call at all.
			if r := cli(t, nil, "--store", store, "token", "--json").mustSucceed(t); !strings.Contains(r.stdout, `"access_token": "`+first+`"`) {
				t.Errorf("token --json = %s", r.stdout)
			}
			if got := p.Stats().TokenCalls; got != 1 {
				t.Errorf("a valid stored token caused a token call (%d total)", got)
			}
		})
	}
}

// TestMixedLeaseSettingsRefreshOnce: a fleet mid-rollout runs replicas with
// different --lease-ttl. One with a long lease is at the token endpoint; one
// with a short lease arrives and must wait for it, not take the lease over
// and spend the refresh token a second time.
func TestMixedLeaseSettingsRefreshOnce(t *testing.T) {
	p := newIDP(t, oauthtest.Options{Rotate: true})
	store := sqliteURL(filepath.Join(t.TempDir(), "tokens.db"))
	p.initExpired(t, store, "default")
	p.ResetStats()
	hold := p.HoldRefreshes(oauthtest.BeforeRotate)
	var long, short result
	var wg sync.WaitGroup
	wg.Go(func() {
		long = cli(t, nil, "--store", store, "--lease-ttl", "20s", "--refresh-timeout", "15s", "token")
	})
	<-hold.Arrived()
	wg.Go(func() {
		short = cli(t, nil, "--store", store, "--lease-ttl", "1s", "--refresh-timeout", "500ms", "token")
	})
	time.Sleep(3 * time.Second) // three of the short replica's leases
	hold.Release()
	wg.Wait()
	long.mustSucceed(t)
	short.mustSucceed(t)
	if long.stdout != short.stdout {
		t.Fatal("the two replicas printed different tokens")
	}
	if st := p.Stats(); st.RefreshCalls != 1 || st.ReuseDetections != 0 {
		t.Fatalf("%d refreshes, %d reuse detections; want 1 and 0", st.RefreshCalls, st.ReuseDetections)
	}
}
