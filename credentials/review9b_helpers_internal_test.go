package credentials

// Hostile review 9b: the fixes of review 9 (2d6fbb6): sidecar entry
// locks, settle before the lease, successor-only writes once an entry is
// gone. Helpers shared by the review9b tests.

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
)

// countedPuts counts the Puts that reach the store.
type countedPuts struct {
	driver.Adapter
	n *atomic.Int64
}

func (a countedPuts) Put(ctx context.Context, key string, value []byte, cond driver.Condition) (driver.Revision, error) {
	a.n.Add(1)
	return a.Adapter.Put(ctx, key, value, cond)
}

// review9bServer is a rotating token server and a record seeded with one
// of its refresh tokens, its access token expired.
func review9bServer(t *testing.T) (*oauthtest.Server, *storage.Record) {
	t.Helper()
	srv := oauthtest.NewServer(oauthtest.Options{Rotate: true})
	t.Cleanup(srv.Close)
	srv.AddClient("client", "secret")
	rec := &storage.Record{Profile: "p", ClientID: "client", ClientSecret: "secret", TokenURL: srv.TokenURL(),
		AccessToken: "at-expired", TokenType: "Bearer", Expiry: time.Now().Add(-time.Hour)}
	rec.Grant(srv.IssueRefreshToken("client"))
	return srv, rec
}
