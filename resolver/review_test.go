package resolver_test

// Hostile review of the lineage rule (issue 11): re-seeding over records
// that carry no lineage.

import (
	"context"
	"testing"
	"time"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/resolver"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/memory"
)

// legacyRotated stores what a record without lineage looks like after a
// rotation (pancloud's credentials.json, or one written by tokencache init
// before lineage), and returns the original seed and the live token.
func legacyRotated(t *testing.T, st *storage.Store, srv *oauthtest.Server, extra func(*storage.Record)) (seed string) {
	t.Helper()
	ctx := context.Background()
	seed = srv.IssueRefreshToken("app")
	// No lineage: written as pancloud (or tokencache before lineage) wrote it.
	legacy := &storage.Record{Profile: "p", ClientID: "app", ClientSecret: "s1", RefreshToken: secret.Secret(seed), TokenURL: srv.TokenURL()}
	if extra != nil {
		extra(legacy)
	}
	if _, err := st.Replace(ctx, nil, "", legacy); err != nil {
		t.Fatal(err)
	}
	// The app that uses the store rotates it once (library, Store source).
	c, err := credentials.New(credentials.Config{Store: st, Profile: "p", JournalDir: "-"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Token(ctx); err != nil {
		t.Fatal(err)
	}
	rec, _, _ := st.Load(ctx, "p")
	if !srv.ValidRefresh(rec.RefreshToken.Reveal()) || rec.RefreshToken.Reveal() == seed {
		t.Fatal("set-up: the stored token did not rotate")
	}
	return seed
}

func expireAccess(t *testing.T, st *storage.Store) {
	t.Helper()
	st.Update(context.Background(), "p", func(r *storage.Record) error { r.Expiry = time.Now().Add(-time.Hour); return nil })
}

// R4. A record with no lineage (pancloud's file, or tokencache before
// lineage) that has rotated since it was seeded: a process started with
// the original seed in APP_* (a container's unchanged environment) puts the
// spent seed back, since the profile "has never seen" it. tokencache init
// refuses exactly this without --force; the resolver does it silently.
func TestReviewResolverReseedsLegacyRecord(t *testing.T) {
	ctx := context.Background()
	srv := oauthtest.NewServer(oauthtest.Options{Rotate: true})
	t.Cleanup(srv.Close)
	srv.AddClient("app", "s1")
	st := storage.NewStore(memory.New(nil))
	seed := legacyRotated(t, st, srv, nil)
	expireAccess(t, st)

	vars := map[string]string{"APP_CLIENT_ID": "app", "APP_CLIENT_SECRET": "s1", "APP_REFRESH_TOKEN": seed}
	c, err := resolver.Credentials(ctx, st, resolver.Options{Profile: "p", TokenURL: srv.TokenURL(), Env: testEnv, Getenv: env(vars)}, credentials.Config{JournalDir: "-"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Token(ctx)
	if n := srv.Stats().ReuseDetections; n != 0 {
		t.Fatalf("%d reuse detection(s) (Token: %v): the resolver wrote the spent seed over the rotated token of a record without lineage", n, err)
	}
}

// R5. The migration of the previous version's seed fingerprint only works
// when nothing in the seed changed: upgrading and rotating
// APP_CLIENT_SECRET in the same deployment (issue 11, case 3) misses the
// fingerprint and the spent seed goes back.
func TestReviewLegacyFingerprintMissedOnSecretRotation(t *testing.T) {
	ctx := context.Background()
	srv := oauthtest.NewServer(oauthtest.Options{Rotate: true})
	t.Cleanup(srv.Close)
	srv.AddClient("app", "s1")
	st := storage.NewStore(memory.New(nil))
	seed := legacyRotated(t, st, srv, func(r *storage.Record) {
		r.SetExtra("tokencache_seed", legacyFingerprintForTest("app", "s1", r.RefreshToken.Reveal(), "", r.TokenURL))
	})
	expireAccess(t, st)
	srv.AddClient("app", "s2") // the client secret is rotated with the upgrade

	vars := map[string]string{"APP_CLIENT_ID": "app", "APP_CLIENT_SECRET": "s2", "APP_REFRESH_TOKEN": seed}
	c, err := resolver.Credentials(ctx, st, resolver.Options{Profile: "p", TokenURL: srv.TokenURL(), Env: testEnv, Getenv: env(vars)}, credentials.Config{JournalDir: "-"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Token(ctx)
	if n := srv.Stats().ReuseDetections; n != 0 {
		t.Fatalf("%d reuse detection(s) (Token: %v): a secret rotation during the upgrade made the spent seed go back", n, err)
	}
}

// R8. Only seeds are remembered, not the generations after them: a
// refresh token the profile held mid-lineage (copied into APP_REFRESH_TOKEN
// from `show --reveal`, a secret manager backup, a new deployment's
// manifest) is "a seed never seen", so the resolver writes it back after
// the store has rotated past it.
func TestReviewResolverReseedsAnIntermediateGeneration(t *testing.T) {
	ctx := context.Background()
	srv := oauthtest.NewServer(oauthtest.Options{Rotate: true})
	t.Cleanup(srv.Close)
	srv.AddClient("app", "s1")
	st := storage.NewStore(memory.New(nil))
	vars := map[string]string{"APP_CLIENT_ID": "app", "APP_CLIENT_SECRET": "s1", "APP_REFRESH_TOKEN": srv.IssueRefreshToken("app")}
	opts := resolver.Options{Profile: "p", TokenURL: srv.TokenURL(), Env: testEnv, Getenv: env(vars)}
	c, err := resolver.Credentials(ctx, st, opts, credentials.Config{JournalDir: "-"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Token(ctx); err != nil {
		t.Fatal(err)
	}
	rec, _, _ := st.Load(ctx, "p")
	backup := rec.RefreshToken.Reveal() // generation 1, saved somewhere
	if _, err := c.Refresh(ctx, nil); err != nil {
		t.Fatal(err)
	}
	vars["APP_REFRESH_TOKEN"] = backup // the next deployment is given the backup
	expireAccess(t, st)
	c2, err := resolver.Credentials(ctx, st, opts, credentials.Config{JournalDir: "-"})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	_, err = c2.Token(ctx)
	if n := srv.Stats().ReuseDetections; n != 0 {
		t.Fatalf("%d reuse detection(s) (Token: %v): a refresh token of an earlier generation went back as a new seed", n, err)
	}
}

// R9. The legacy migration changes the profile's grant id (from none to
// the seed's) without changing its token. A refresh of the same profile in
// flight at that moment (the CLI's token, which does not run the
// resolver, or a replica resolving from the store) writes its successor
// with the old, empty grant id: the store calls that "changed without
// Rotate", persist drops it as superseded, and the store keeps the token
// the server has just rotated.
func TestReviewMigrationDuringRefreshDropsTheSuccessor(t *testing.T) {
	ctx := context.Background()
	srv := oauthtest.NewServer(oauthtest.Options{Rotate: true})
	t.Cleanup(srv.Close)
	srv.AddClient("app", "s1")
	st := storage.NewStore(memory.New(nil))
	seed := srv.IssueRefreshToken("app")
	legacy := &storage.Record{Profile: "p", ClientID: "app", ClientSecret: "s1", RefreshToken: secret.Secret(seed), TokenURL: srv.TokenURL()}
	legacy.SetExtra("tokencache_seed", legacyFingerprintForTest("app", "s1", seed, "", srv.TokenURL()))
	if _, err := st.Replace(ctx, nil, "", legacy); err != nil {
		t.Fatal(err)
	}

	cli, err := credentials.New(credentials.Config{Store: st, Profile: "p", JournalDir: "-"})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	hold := srv.HoldRefreshes(oauthtest.AfterRotate)
	done := make(chan error, 1)
	go func() { _, err := cli.Token(ctx); done <- err }()
	<-hold.Arrived()
	// The upgraded app starts with its unchanged environment meanwhile.
	vars := map[string]string{"APP_CLIENT_ID": "app", "APP_CLIENT_SECRET": "s1", "APP_REFRESH_TOKEN": seed}
	if err := resolver.Resolve(resolver.Options{Profile: "p", TokenURL: srv.TokenURL(), Env: testEnv, Getenv: env(vars)}).Apply(ctx, st); err != nil {
		t.Fatal(err)
	}
	hold.Release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rec, _, _ := st.Load(ctx, "p")
	if !srv.ValidRefresh(rec.RefreshToken.Reveal()) {
		t.Fatalf("the store kept the spent seed (grant %q gen %d); the rotated token was dropped as superseded", rec.Lineage.Grant, rec.Lineage.Gen)
	}
}

// R4c. The commonest form of R4: the file holds exactly the seed the
// environment gives (pancloud wrote it, or tokencache init before
// lineage). The first start finds the token equal, so Seed returns early
// without recording the seed's grant id; the app refreshes, and its next
// restart with the same environment writes the spent seed back.
func TestReviewResolverSecondStartReplaysSeedOfLegacyRecord(t *testing.T) {
	ctx := context.Background()
	srv := oauthtest.NewServer(oauthtest.Options{Rotate: true})
	t.Cleanup(srv.Close)
	srv.AddClient("app", "s1")
	st := storage.NewStore(memory.New(nil))
	seed := srv.IssueRefreshToken("app")
	if _, err := st.Replace(ctx, nil, "", &storage.Record{Profile: "p", ClientID: "app", ClientSecret: "s1",
		RefreshToken: secret.Secret(seed), TokenURL: srv.TokenURL()}); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"APP_CLIENT_ID": "app", "APP_CLIENT_SECRET": "s1", "APP_REFRESH_TOKEN": seed}
	opts := resolver.Options{Profile: "p", TokenURL: srv.TokenURL(), Env: testEnv, Getenv: env(vars)}
	for start := 1; start <= 2; start++ {
		c, err := resolver.Credentials(ctx, st, opts, credentials.Config{JournalDir: "-"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Token(ctx)
		c.Close()
		if n := srv.Stats().ReuseDetections; n != 0 {
			t.Fatalf("start %d: %d reuse detection(s) (Token: %v): the same environment put the spent seed back", start, n, err)
		}
		expireAccess(t, st)
	}
}
