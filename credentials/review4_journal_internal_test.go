package credentials

import (
	"context"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/memory"
)

// putLog records the refresh token of every record written.
type putLog struct {
	driver.Adapter
	mu  sync.Mutex
	rts []string
}

func (p *putLog) Put(ctx context.Context, k string, v []byte, c driver.Condition) (storage.Revision, error) {
	if r, err := storage.DecodeRecord(v); err == nil {
		p.mu.Lock()
		p.rts = append(p.rts, r.RefreshToken.Reveal())
		p.mu.Unlock()
	}
	return p.Adapter.Put(ctx, k, v, c)
}

// review 4: two processes on one machine journalled generations 1 and 2 of
// a grant (generation 2 spent generation 1), and the store then lost the
// profile. Replay took the entries in directory order, which puts "…1…"
// before "…2…" (and "…10…" before "…9…"): generation 1, spent, went into
// the emptied store first, without a lease, until the next entry's write
// replaced it. Any replica that read it meanwhile refreshes with a spent
// token. Replay must write the newest generation first.
func TestReview4JournalReplaysNewestGenerationFirst(t *testing.T) {
	srv := oauthtest.NewServer(oauthtest.Options{Rotate: true})
	defer srv.Close()
	srv.AddClient("storm-client", "storm-secret")
	rt0 := srv.IssueRefreshToken("storm-client")
	refresh := func(rt string) *Tokens {
		t.Helper()
		got, err := RequestToken(context.Background(), nil, TokenRequest{TokenURL: srv.TokenURL(), ClientID: "storm-client",
			ClientSecret: "storm-secret", Form: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	now := time.Now()
	gen0 := &storage.Record{Profile: "p", ClientID: "storm-client", ClientSecret: "storm-secret", TokenURL: srv.TokenURL()}
	gen0.Grant(rt0)
	t1 := refresh(rt0)
	gen1 := gen0.Clone()
	gen1.Rotate(t1.RefreshToken.Reveal())
	gen1.AccessToken, gen1.Expiry, gen1.IssuedAt = t1.AccessToken, t1.Expiry, now
	t2 := refresh(t1.RefreshToken.Reveal())
	gen2 := gen1.Clone()
	gen2.Rotate(t2.RefreshToken.Reveal())
	gen2.AccessToken, gen2.Expiry, gen2.IssuedAt = t2.AccessToken, t2.Expiry, now

	log := &putLog{Adapter: memory.New(nil)}
	st := storage.NewNamedStore("journal-order:"+t.Name(), log)
	c, err := New(Config{Store: st, Profile: "p", JournalDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, r := range []*storage.Record{gen1, gen2} {
		if _, err := c.journal.save(st.Name(), r, true); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.replayJournal(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i, rt := range log.rts {
		if rt == t1.RefreshToken.Reveal() {
			t.Fatalf("write %d of the replay put generation 1, which generation 2 had spent, into the emptied store", i+1)
		}
	}
	if rec, _, err := st.Load(context.Background(), "p"); err != nil || rec.RefreshToken != secret.Secret(t2.RefreshToken.Reveal()) {
		t.Fatalf("the store does not end with generation 2 (%v)", err)
	}
}
