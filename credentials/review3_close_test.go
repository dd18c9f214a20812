package credentials_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/memory"
)

// review3: the minimal form of TestReview3ProfilesRace: Token calls that
// start flights while Close runs. Close must make later Token calls fail
// with ErrClosed (or serve the cached token), never race its WaitGroup.
func TestReview3TokenRacesClose(t *testing.T) {
	srv := oauthtest.NewServer(oauthtest.Options{Rotate: true, AccessTTL: time.Hour})
	defer srv.Close()
	srv.AddClient("cid", "cs")
	for range 20 {
		st := storage.NewStore(memory.New(nil))
		rec := &storage.Record{Profile: "p", ClientID: "cid", ClientSecret: "cs", TokenURL: srv.TokenURL()}
		rec.Grant(srv.IssueRefreshToken("cid"))
		if _, err := st.Replace(context.Background(), nil, "", rec); err != nil {
			t.Fatal(err)
		}
		c, err := credentials.New(credentials.Config{Store: st, Profile: "p", JournalDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for range 50 {
					// A forced refresh starts a flight every time.
					ctx, cancel := context.WithTimeout(context.Background(), time.Second)
					c.Refresh(ctx, nil)
					cancel()
				}
			})
		}
		time.Sleep(5 * time.Millisecond)
		c.Close()
		wg.Wait()
		st.Close()
	}
}
