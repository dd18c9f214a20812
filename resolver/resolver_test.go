package resolver_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/tokencache/tokencache/resolver"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/memory"
)

// testEnv names the variables of a made-up vendor, APP_*.
var testEnv = resolver.EnvNames{AccessToken: "APP_ACCESS_TOKEN", ClientID: "APP_CLIENT_ID", ClientSecret: "APP_CLIENT_SECRET", RefreshToken: "APP_REFRESH_TOKEN"}

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestResolveBranches(t *testing.T) {
	fullEnv := map[string]string{
		"APP_CLIENT_ID": "env-id", "APP_CLIENT_SECRET": "env-secret", "APP_REFRESH_TOKEN": "env-rt",
	}
	tests := []struct {
		name       string
		opts       resolver.Options
		env        map[string]string
		wantSource resolver.Source
		wantID     string
		wantRT     string
	}{
		{"explicit wins over env", resolver.Options{ClientID: "x-id", RefreshToken: "x-rt"}, fullEnv, resolver.Explicit, "x-id", "x-rt"},
		{"explicit partial does not mix in env", resolver.Options{ClientID: "x-id"}, fullEnv, resolver.Explicit, "x-id", ""},
		{"explicit access token alone", resolver.Options{AccessToken: "at"}, fullEnv, resolver.Explicit, "", ""},
		{"env when nothing explicit", resolver.Options{}, fullEnv, resolver.Environment, "env-id", "env-rt"},
		{"one env var selects env", resolver.Options{}, map[string]string{"APP_ACCESS_TOKEN": "at"}, resolver.Environment, "", ""},
		{"store when nothing set", resolver.Options{}, nil, resolver.Store, "", ""},
		{"each field: explicit over env, env fills the rest", resolver.Options{ClientID: "x-id", Rule: resolver.EachField}, fullEnv, resolver.Mixed, "x-id", "env-rt"},
		{"each field: env alone", resolver.Options{Rule: resolver.EachField}, fullEnv, resolver.Environment, "env-id", "env-rt"},
		{"each field: explicit alone", resolver.Options{ClientID: "x-id", Rule: resolver.EachField}, nil, resolver.Explicit, "x-id", ""},
		{"each field: nothing", resolver.Options{Rule: resolver.EachField}, nil, resolver.Store, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Env, tt.opts.Getenv = testEnv, env(tt.env)
			res := resolver.Resolve(tt.opts)
			if res.Source != tt.wantSource {
				t.Fatalf("source = %s, want %s", res.Source, tt.wantSource)
			}
			if tt.wantSource == resolver.Store {
				if res.Seed != nil {
					t.Fatal("store source with a seed")
				}
				return
			}
			if res.Seed.ClientID != tt.wantID || res.Seed.RefreshToken.Reveal() != tt.wantRT {
				t.Fatalf("seed id=%q rt=%q", res.Seed.ClientID, res.Seed.RefreshToken.Reveal())
			}
		})
	}
}

func TestApplySeedKeepsRotatedToken(t *testing.T) {
	ctx := context.Background()
	st := storage.NewStore(memory.New(nil))
	opts := resolver.Options{Profile: "p", ClientID: "id", ClientSecret: "s", RefreshToken: "rt-1", TokenURL: "http://t"}
	if err := resolver.Resolve(opts).Apply(ctx, st); err != nil {
		t.Fatal(err)
	}
	// The server rotates; the store now holds rt-2.
	if _, _, err := st.Update(ctx, "p", func(r *storage.Record) error { r.Rotate("rt-2"); return nil }); err != nil {
		t.Fatal(err)
	}
	// Restarted with the same explicit values: the rotated token stays.
	if err := resolver.Resolve(opts).Apply(ctx, st); err != nil {
		t.Fatal(err)
	}
	rec, _, _ := st.Load(ctx, "p")
	if rec.RefreshToken.Reveal() != "rt-2" {
		t.Fatalf("same seed replaced the rotated token: %q", rec.RefreshToken.Reveal())
	}
	// New values from the operator replace it.
	opts.RefreshToken = "rt-new"
	if err := resolver.Resolve(opts).Apply(ctx, st); err != nil {
		t.Fatal(err)
	}
	rec, _, _ = st.Load(ctx, "p")
	if rec.RefreshToken.Reveal() != "rt-new" {
		t.Fatalf("new seed not applied: %q", rec.RefreshToken.Reveal())
	}
}

func TestApplyStoreSource(t *testing.T) {
	ctx := context.Background()
	st := storage.NewStore(memory.New(nil))
	err := resolver.Resolve(resolver.Options{Profile: "missing", Env: testEnv, Getenv: env(nil)}).Apply(ctx, st)
	if !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("missing profile: %v", err)
	}
	st.Update(ctx, "p", func(r *storage.Record) error { r.ClientID, r.RefreshToken = "id", "rt"; return nil })
	if err := resolver.Resolve(resolver.Options{Profile: "p", TokenURL: "http://t", Env: testEnv, Getenv: env(nil)}).Apply(ctx, st); err != nil {
		t.Fatal(err)
	}
	rec, _, _ := st.Load(ctx, "p")
	if rec.TokenURL != "http://t" {
		t.Fatalf("token URL not filled in: %q", rec.TokenURL)
	}
}

// Issue 11, case 3: rotating only APP_CLIENT_SECRET used to re-seed the
// whole record, spent bootstrap refresh token included.
func TestApplyChangedSecretKeepsRotatedToken(t *testing.T) {
	ctx := context.Background()
	st := storage.NewStore(memory.New(nil))
	vars := map[string]string{"APP_CLIENT_ID": "id", "APP_CLIENT_SECRET": "s1", "APP_REFRESH_TOKEN": "rt-1"}
	if err := resolver.Resolve(resolver.Options{Profile: "p", Env: testEnv, Getenv: env(vars)}).Apply(ctx, st); err != nil {
		t.Fatal(err)
	}
	st.Update(ctx, "p", func(r *storage.Record) error { r.Rotate("rt-2"); return nil })
	vars["APP_CLIENT_SECRET"] = "s2"
	if err := resolver.Resolve(resolver.Options{Profile: "p", Env: testEnv, Getenv: env(vars)}).Apply(ctx, st); err != nil {
		t.Fatal(err)
	}
	rec, _, _ := st.Load(ctx, "p")
	if rec.RefreshToken.Reveal() != "rt-2" || rec.ClientSecret.Reveal() != "s2" {
		t.Fatalf("after a secret rotation: refresh token %q (want rt-2), secret %q (want s2)", rec.RefreshToken.Reveal(), rec.ClientSecret.Reveal())
	}
	// A new grant, then the old environment again: the old seed stays out.
	vars["APP_REFRESH_TOKEN"] = "rt-new"
	resolver.Resolve(resolver.Options{Profile: "p", Env: testEnv, Getenv: env(vars)}).Apply(ctx, st)
	vars["APP_REFRESH_TOKEN"] = "rt-1"
	if err := resolver.Resolve(resolver.Options{Profile: "p", Env: testEnv, Getenv: env(vars)}).Apply(ctx, st); err != nil {
		t.Fatal(err)
	}
	rec, _, _ = st.Load(ctx, "p")
	if rec.RefreshToken.Reveal() != "rt-new" {
		t.Fatalf("an old seed came back: %q", rec.RefreshToken.Reveal())
	}
}

// Records written by earlier versions carry a fingerprint of the whole
// seed instead of lineage; the same seed must still keep the rotated token.
func TestApplyMigratesLegacySeedFingerprint(t *testing.T) {
	ctx := context.Background()
	st := storage.NewStore(memory.New(nil))
	opts := resolver.Options{Profile: "p", ClientID: "id", ClientSecret: "s", RefreshToken: "rt-1", TokenURL: "http://t"}
	// What the previous version stored after a rotation: the fingerprint
	// of (id, s, rt-1, "", http://t) and the rotated token, no lineage.
	legacy := &storage.Record{Profile: "p", ClientID: "id", ClientSecret: "s", RefreshToken: "rt-2", TokenURL: "http://t"}
	legacy.SetExtra("tokencache_seed", "e1b2d4f7a8b3e0f1d2c3b4a5")
	if _, err := st.Replace(ctx, nil, "", legacy); err != nil {
		t.Fatal(err)
	}
	fp := legacyFingerprintForTest("id", "s", "rt-1", "", "http://t")
	st.Update(ctx, "p", func(r *storage.Record) error { return r.SetExtra("tokencache_seed", fp) })
	if err := resolver.Resolve(opts).Apply(ctx, st); err != nil {
		t.Fatal(err)
	}
	rec, _, _ := st.Load(ctx, "p")
	if rec.RefreshToken.Reveal() != "rt-2" {
		t.Fatalf("legacy record: the same seed replaced the rotated token: %q", rec.RefreshToken.Reveal())
	}
	if ok, _ := rec.GetExtra("tokencache_seed", new(string)); ok {
		t.Fatal("legacy fingerprint kept after migration")
	}
}

func legacyFingerprintForTest(fields ...string) string {
	h := sha256.New()
	for _, s := range fields {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}
