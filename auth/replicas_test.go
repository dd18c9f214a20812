package auth_test

import (
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokencache/tokencache/auth"
	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/httpauth"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/memory"
)

// TestClientCredentialsReplicas runs 8 replicas, each its own
// Credentials over its own connection to one shared store, with 50
// goroutines each authorizing requests over three token lifetimes. The
// server must issue one token per lifetime, every token is used, and no
// request carries a token the server no longer accepts.
func TestClientCredentialsReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for several seconds")
	}
	const (
		replicas   = 8
		goroutines = 50
		ttl        = 2 * time.Second
		renewAhead = 500 * time.Millisecond
		// Three lifetimes, ending mid-lifetime so that no renewal is in
		// flight when the goroutines stop.
		run = 3*(ttl-renewAhead) - 250*time.Millisecond
	)
	srv := oauthtest.NewServer(oauthtest.Options{AccessTTL: ttl})
	t.Cleanup(srv.Close)
	srv.AddClient(cid, csecret)
	srv.SetLatency(20 * time.Millisecond) // a refresh takes a while, so rivals overlap

	params := auth.Params{"token_url": srv.TokenURL(), "client_id": cid, "client_secret": csecret, "scopes": "api"}
	storeName := t.Name() + "/" + time.Now().Format(time.RFC3339Nano) // -count=N must not reuse a store
	var authorizers []httpauth.Authorizer
	for range replicas {
		st := storage.NewStore(memory.New(&memory.Options{Name: storeName})) // one connection per replica
		t.Cleanup(func() { st.Close() })
		a, err := auth.New("oauth2_client_credentials", params, auth.Env{
			Store: st, Profile: "svc",
			Credentials: credentials.Config{Skew: 300 * time.Millisecond, RenewAhead: renewAhead,
				LeaseTTL: 3 * time.Second, PollInterval: 20 * time.Millisecond},
		})
		if err != nil {
			t.Fatal(err)
		}
		closeAuth(t, a)
		authorizers = append(authorizers, a)
	}

	var (
		mu        sync.Mutex
		firstSeen = map[string]time.Time{}
		invalid   int
		requests  int
	)
	start := time.Now()
	deadline := start.Add(run)
	var wg sync.WaitGroup
	for _, a := range authorizers {
		for g := range goroutines {
			wg.Go(func() {
				for i := 0; time.Now().Before(deadline); i++ {
					req, _ := http.NewRequest("GET", "http://api.example/x", nil)
					if err := a.Authorize(t.Context(), req); err != nil {
						t.Error(err)
						return
					}
					tok, _ := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
					bad := (g+i)%10 == 0 && !srv.Valid(tok)
					mu.Lock()
					requests++
					if _, ok := firstSeen[tok]; !ok {
						firstSeen[tok] = time.Now()
					}
					if bad {
						invalid++
					}
					mu.Unlock()
					time.Sleep(2 * time.Millisecond)
				}
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	time.Sleep(100 * time.Millisecond) // let a late background renewal show in the counters

	stats := srv.Stats()
	var seen []time.Time
	for _, at := range firstSeen {
		seen = append(seen, at)
	}
	slices.SortFunc(seen, time.Time.Compare)
	t.Logf("%d replicas x %d goroutines, %d requests in %v: %d token calls, %d tokens issued, %d distinct tokens used",
		replicas, goroutines, requests, elapsed.Round(time.Millisecond), stats.TokenCalls, stats.Issued, len(firstSeen))

	lifetimes := int64(elapsed/(ttl-renewAhead)) + 1
	if stats.TokenCalls < 3 || stats.TokenCalls > lifetimes {
		t.Errorf("%d token calls in %v; want one per lifetime: 3..%d", stats.TokenCalls, elapsed, lifetimes)
	}
	if int64(len(firstSeen)) != stats.Issued {
		t.Errorf("%d tokens issued but %d used: a replica fetched a token nobody else adopted", stats.Issued, len(firstSeen))
	}
	for i := 1; i < len(seen); i++ {
		if gap := seen[i].Sub(seen[i-1]); gap < ttl-renewAhead-300*time.Millisecond {
			t.Errorf("tokens %d and %d first used %v apart; want about %v (one per lifetime)", i-1, i, gap, ttl-renewAhead)
		}
	}
	if invalid > 0 {
		t.Errorf("%d sampled requests carried a token the server rejects", invalid)
	}
}
