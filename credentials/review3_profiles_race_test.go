package credentials_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/memory"
)

// review3: Get, Token, Remove, Add and Close racing on a few profiles: no
// data race, no hang, and a Get that starts after Remove returned never
// hands out the closed Credentials.
//
// It fails under -race, every run: Credentials.Close does c.cancel() then
// c.wg.Wait(), while startFlight does c.wg.Add(1) without checking that
// the Credentials is closing, so a Token call racing Close (a request
// handler that got the Credentials from Profiles.Get while an admin calls
// Profiles.Remove) is an Add concurrent with Wait: a data race, and the
// panic "sync: WaitGroup is reused before previous Wait has returned",
// which takes the process down.
func TestReview3ProfilesRace(t *testing.T) {
	srv := oauthtest.NewServer(oauthtest.Options{Rotate: true, AccessTTL: time.Hour})
	defer srv.Close()
	srv.AddClient("cid", "cs")
	st := storage.NewStore(memory.New(nil))
	defer st.Close()
	ps, err := credentials.NewProfiles(credentials.Config{Store: st, JournalDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	mk := func(i int) *storage.Record {
		rec := &storage.Record{Profile: fmt.Sprintf("p%d", i), ClientID: "cid", ClientSecret: "cs", TokenURL: srv.TokenURL()}
		rec.Grant(srv.IssueRefreshToken("cid"))
		return rec
	}
	ctx := context.Background()
	for i := range 4 {
		if err := ps.Add(ctx, mk(i)); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	deadline := time.Now().Add(2 * time.Second)
	for g := range 8 {
		wg.Go(func() {
			for n := 0; time.Now().Before(deadline); n++ {
				p := fmt.Sprintf("p%d", (g+n)%4)
				switch n % 5 {
				case 0:
					old, _ := ps.Get(p)
					if err := ps.Remove(ctx, p); err != nil && !errors.Is(err, storage.ErrNotFound) {
						t.Errorf("Remove: %v", err)
					}
					if c, err := ps.Get(p); err == nil && c == old {
						t.Errorf("Get after Remove returned the removed Credentials")
					}
					ps.Add(ctx, mk((g+n)%4))
				default:
					cctx, cancel := context.WithTimeout(ctx, time.Second)
					ps.Token(cctx, p)
					cancel()
				}
			}
		})
	}
	wg.Wait()
	if err := ps.Close(); err != nil {
		t.Logf("Close: %v", err)
	}
	if s := srv.Stats(); s.ReuseDetections != 0 {
		t.Errorf("%d reuse detections", s.ReuseDetections)
	}
}
