package main

// Hostile review of the lineage rule (issue 11), through the built CLI.

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
)

// R6. copy writes a record without lineage (pancloud's credentials.json)
// into the destination as is, so the destination never learns that its
// refresh token was a seed. After the destination rotated it, the same
// migration run again with --force (an idempotent migration script) puts
// the spent token back, although copyOver promises to refuse "a seed the
// destination has held before".
func TestReviewCopyForceRepeatedMigrationReplaysSpentToken(t *testing.T) {
	p := newIDP(t, oauthtest.Options{Rotate: true})
	dir := t.TempDir()
	src, dst := fileURL(filepath.Join(dir, "credentials.json")), sqliteURL(filepath.Join(dir, "tokens.db"))
	journal := []string{"TOKENCACHE_JOURNAL_DIR=" + filepath.Join(dir, "journal")}

	// pancloud's file: no lineage, an expired access token.
	st, err := storage.Open(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	legacy := &storage.Record{Profile: "default", ClientID: p.clientID, ClientSecret: secret.Secret(p.secret),
		RefreshToken: secret.Secret(p.IssueRefreshToken(p.clientID)), TokenURL: p.TokenURL(),
		AccessToken: "expired", Expiry: time.Now().Add(-time.Hour)}
	if _, err := st.Replace(context.Background(), nil, "", legacy); err != nil {
		t.Fatal(err)
	}
	st.Close()

	cli(t, journal, "--store", src, "copy", "--to", dst).mustSucceed(t)
	cli(t, journal, "--store", dst, "token").mustSucceed(t) // the app now uses the new store: it rotates
	r := cli(t, journal, "--store", src, "copy", "--to", dst, "--force")
	t.Logf("copy --force again: exit %d, %s%s", r.code, r.stdout, r.stderr)
	cli(t, journal, "--store", dst, "refresh")
	if n := p.Stats().ReuseDetections; n != 0 {
		t.Fatalf("%d reuse detection(s): copy --force put back the refresh token the destination had already rotated", n)
	}
}

// R10. init --force installs the given refresh token as a new grant even
// when the profile knows it as its own spent seed. A container entrypoint
// that got "--force replaces it" from init's refusal once (a new grant was
// being installed) keeps --force, and from then on every restart writes
// the spent seed back. A token the profile has seen is never a new grant.
func TestReviewInitForceReplaysSeenSeed(t *testing.T) {
	p := newIDP(t, oauthtest.Options{Rotate: true})
	dir := t.TempDir()
	store := fileURL(filepath.Join(dir, "credentials.json"))
	journal := "TOKENCACHE_JOURNAL_DIR=" + filepath.Join(dir, "journal")
	seed := p.IssueRefreshToken(p.clientID)
	entrypoint := func() result {
		return cli(t, []string{journal, "PAN_CLIENT_ID=" + p.clientID, "PAN_CLIENT_SECRET=" + p.secret, "PAN_REFRESH_TOKEN=" + seed},
			"--store", store, "init", "--force", "--token-url", p.TokenURL())
	}
	entrypoint().mustSucceed(t)
	cli(t, []string{journal}, "--store", store, "token").mustSucceed(t)
	r := entrypoint() // the container restarts
	t.Logf("init --force on restart: exit %d: %s%s", r.code, r.stdout, r.stderr)
	cli(t, []string{journal}, "--store", store, "refresh")
	if n := p.Stats().ReuseDetections; n != 0 {
		t.Fatalf("%d reuse detection(s): init --force wrote back the seed the profile had already rotated", n)
	}
}

// R12. login writes its flags into the profile (with --force semantics)
// before the user has authorized anything. A login for another client
// that is abandoned (the browser closed, --timeout) leaves the profile's
// live refresh token paired with a client it was not issued to: the
// profile cannot refresh, and the client id the token needs is gone.
func TestReviewAbandonedLoginForAnotherClientBreaksTheProfile(t *testing.T) {
	p := newIDP(t, oauthtest.Options{Rotate: true})
	p.AddClient("other-app", "")
	dir := t.TempDir()
	store := fileURL(filepath.Join(dir, "credentials.json"))
	journal := []string{"TOKENCACHE_JOURNAL_DIR=" + filepath.Join(dir, "journal")}
	p.initExpired(t, store, "default")
	cli(t, journal, "--store", store, "token").mustSucceed(t)

	r := cli(t, journal, "--store", store, "login", "--no-browser", "--timeout", "1s",
		"--client-id", "other-app", "--authorize-url", p.AuthorizeURL())
	t.Logf("abandoned login: exit %d: %s", r.code, r.stderr)
	if rec := loadRecord(t, store, "default"); rec.ClientID != p.clientID {
		rr := cli(t, journal, "--store", store, "refresh")
		t.Fatalf("after an abandoned login the profile's client is %q, not %q (its refresh token still valid at the server: %v); refresh: exit %d %s",
			rec.ClientID, p.clientID, p.ValidRefresh(rec.RefreshToken.Reveal()), rr.code, rr.stderr)
	}
}
