package main

// Review of issue 12 through the built CLI: "the lease belongs to
// credentials; writers outside the protocol cannot drop or misjudge it".

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
)

// copy without --force wrote the source's record into the destination as
// it was, lease included: a lease whose holder refreshes against the
// source store, and will never write to or clear anything in the
// destination. Every replica of the destination then waits that lease out
// (up to its TTL) for a refresh that is not coming. copy --force, which
// goes through Store.Update, keeps the destination's own lease and never
// takes the source's; copy without it must not take it either.
func TestReview12CopyDoesNotCarryTheSourceLease(t *testing.T) {
	p := newIDP(t, oauthtest.Options{Rotate: true})
	dir := t.TempDir()
	src, dst := fileURL(filepath.Join(dir, "credentials.json")), sqliteURL(filepath.Join(dir, "tokens.db"))

	st, err := storage.Open(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	rec := &storage.Record{Profile: "default", ClientID: p.clientID, ClientSecret: secret.Secret(p.secret),
		TokenURL: p.TokenURL(), AccessToken: "expired", Expiry: time.Now().Add(-time.Hour),
		Lease: &storage.Lease{Owner: "another-host:4242", Until: time.Now().Add(time.Minute), TTL: storage.Duration(time.Minute)}}
	rec.Grant(p.IssueRefreshToken(p.clientID))
	if _, err := st.Replace(context.Background(), nil, "", rec); err != nil {
		t.Fatal(err)
	}
	st.Close()

	cli(t, nil, "--store", src, "copy", "--to", dst).mustSucceed(t)
	if l := loadRecord(t, dst, "default").Lease; l != nil {
		t.Errorf("the copy holds the source's lease %+v: the destination's replicas wait for a refresh that happens elsewhere", *l)
	}
	if l := loadRecord(t, src, "default").Lease; l == nil {
		t.Error("copy dropped the source's live lease")
	}
}
