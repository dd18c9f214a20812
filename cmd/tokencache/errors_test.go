package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tokencache/tokencache/oauthtest"
)

// TestFailuresExitCodesAndStoreUntouched runs "tokencache token" into each
// failure class. Each must print one line on stderr (no secrets in it),
// nothing on stdout, exit with its own code, and leave the store as it was:
// byte for byte where no refresh starts; where one legitimately starts (the
// endpoint cases take and then release the lease), every credential and
// every other profile as it was and the lease released.
func TestFailuresExitCodesAndStoreUntouched(t *testing.T) {
	p := newIDP(t, oauthtest.Options{Rotate: true})
	env := []string{"PAN_CLIENT_ID=" + p.clientID, "PAN_CLIENT_SECRET=" + p.secret}

	type setup struct {
		path, store string
		secrets     []string // must not appear on stderr
	}
	// newStore makes a file store with a bystander profile and the case's.
	newStore := func(t *testing.T, tokenURL, secret string, refresh bool) setup {
		dir := t.TempDir()
		s := setup{path: filepath.Join(dir, "credentials.json")}
		s.store = fileURL(s.path)
		p.initExpired(t, s.store, "bystander")
		rt := ""
		if refresh {
			rt = p.IssueRefreshToken(p.clientID)
		}
		args := []string{"--store", s.store, "init", "--token-url", tokenURL, "--access-token", "old-access", "--expires-in", "-1m"}
		cli(t, []string{"PAN_CLIENT_ID=" + p.clientID, "PAN_CLIENT_SECRET=" + secret, "PAN_REFRESH_TOKEN=" + rt}, args...).mustSucceed(t)
		s.secrets = []string{secret, p.secret, "old-access"}
		if rt != "" {
			s.secrets = append(s.secrets, rt)
		}
		return s
	}

	cases := []struct {
		name     string
		prepare  func(t *testing.T) setup
		args     []string
		code     int
		want     string // in the stderr line
		refresht bool   // a refresh starts: compare modulo lease bookkeeping
	}{
		{
			name:    "unknown profile",
			prepare: func(t *testing.T) setup { return newStore(t, p.TokenURL(), p.secret, true) },
			args:    []string{"--profile", "nosuch", "token"},
			code:    exitNotFound, want: `profile "nosuch" not found`,
		},
		{
			name: "corrupt store",
			prepare: func(t *testing.T) setup {
				s := newStore(t, p.TokenURL(), p.secret, true)
				b, _ := os.ReadFile(s.path)
				os.WriteFile(s.path, b[:len(b)/2], 0o600) // a torn write
				return s
			},
			args: []string{"token"},
			code: exitCorrupt, want: "corrupt",
		},
		{
			name: "partial credentials",
			prepare: func(t *testing.T) setup {
				return newStore(t, p.TokenURL(), p.secret, false)
			},
			args: []string{"token"},
			code: exitPartialCred, want: "missing refresh_token",
		},
		{
			name: "unreachable endpoint",
			prepare: func(t *testing.T) setup {
				// Port 1 (tcpmux) has no listener: connections are
				// refused. A port that was just freed is not enough: a
				// server of a parallel test may take it meanwhile.
				return newStore(t, "http://127.0.0.1:1/oauth2/token", p.secret, true)
			},
			args: []string{"token"},
			code: exitTemporary, want: "unreachable", refresht: true,
		},
		{
			name: "revoked refresh token",
			prepare: func(t *testing.T) setup {
				s := newStore(t, p.TokenURL(), p.secret, true)
				p.Revoke(s.secrets[len(s.secrets)-1])
				return s
			},
			args: []string{"token"},
			code: exitReauth, want: "re-authorization", refresht: true,
		},
		{
			name:    "wrong client secret",
			prepare: func(t *testing.T) setup { return newStore(t, p.TokenURL(), "not-the-secret", true) },
			args:    []string{"token"},
			code:    exitBadClient, want: "invalid_client", refresht: true,
		},
		{
			name:    "bad store URL",
			prepare: func(t *testing.T) setup { return newStore(t, p.TokenURL(), p.secret, true) },
			args:    []string{"--store", "nosuch://user:pw-secret@host/x", "token"},
			code:    exitUsage, want: "unknown scheme",
		},
		{
			name:    "unknown flag",
			prepare: func(t *testing.T) setup { return newStore(t, p.TokenURL(), p.secret, true) },
			args:    []string{"token", "--no-such-flag"},
			code:    exitUsage, want: "unknown flag",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.prepare(t)
			before, err := os.ReadFile(s.path)
			if err != nil {
				t.Fatal(err)
			}
			p.ResetStats()
			r := cli(t, env, append([]string{"--store", s.store}, tc.args...)...)

			if r.code != tc.code {
				t.Errorf("exit %d, want %d; stderr: %s", r.code, tc.code, r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
			line := strings.TrimSuffix(r.stderr, "\n")
			if strings.Contains(line, "\n") || !strings.HasPrefix(line, "tokencache: ") || !strings.Contains(line, tc.want) {
				t.Errorf("stderr %q: want one line starting \"tokencache: \" that mentions %q", r.stderr, tc.want)
			}
			for _, sec := range append(s.secrets, "pw-secret") {
				if strings.Contains(r.stderr, sec) {
					t.Errorf("stderr leaks a secret: %q", r.stderr)
				}
			}
			t.Logf("exit %d: %s", r.code, line)

			after, _ := os.ReadFile(s.path)
			switch {
			case !tc.refresht:
				if !bytes.Equal(before, after) {
					t.Errorf("the store file changed:\nbefore %s\nafter  %s", before, after)
				}
			default:
				if p.Stats().RefreshCalls > 0 && p.Stats().ReuseDetections != 0 {
					t.Error("the failed refresh caused a reuse detection")
				}
				b, a := withoutBookkeeping(t, before), withoutBookkeeping(t, after)
				if !reflect.DeepEqual(b, a) {
					t.Errorf("the store changed beyond the lease bookkeeping:\nbefore %v\nafter  %v", b, a)
				}
			}
		})
	}
}

// withoutBookkeeping decodes a credentials.json and drops what taking and
// releasing the refresh lease rewrites: updated_at and a released lease.
func withoutBookkeeping(t *testing.T, data []byte) map[string]any {
	t.Helper()
	var v struct {
		Profiles map[string]map[string]any `json:"profiles"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("store file: %v", err)
	}
	out := map[string]any{}
	for id, doc := range v.Profiles {
		if doc["lease"] != nil {
			t.Errorf("profile %v: lease left behind: %v", doc["profile"], doc["lease"])
		}
		delete(doc, "updated_at")
		delete(doc, "lease")
		out[id] = doc
	}
	return out
}
