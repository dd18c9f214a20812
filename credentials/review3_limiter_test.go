package credentials_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/memory"
)

// review3: an endpoint that answers 429 Retry-After: 2 must not be called
// again by this process for 2 seconds. With one slot per endpoint, the
// flights queued on the slot when the 429 came back go to the endpoint one
// after another as soon as the throttled flight gives its slot up (it
// does when it does not retry: MaxRetries < 0 here, or its second 429 with
// the default), each getting another 429, all inside the pause.
func TestReview3RetryAfterHonouredByQueuedFlights(t *testing.T) {
	var mu sync.Mutex
	var first time.Time
	var inPause []time.Duration
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		now := time.Now()
		if first.IsZero() {
			first = now
		} else if d := now.Sub(first); d < 2*time.Second {
			inPause = append(inPause, d)
		}
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "2")
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprint(w, `{"error":"slow_down"}`)
	}))
	defer srv.Close()
	st := storage.NewStore(memory.New(nil))
	defer st.Close()
	const profiles = 8
	for i := range profiles {
		rec := &storage.Record{Profile: fmt.Sprintf("p%d", i), ClientID: "cid", ClientSecret: "cs", TokenURL: srv.URL + "/token"}
		rec.Grant(fmt.Sprintf("rt-%d", i))
		if _, err := st.Replace(context.Background(), nil, "", rec); err != nil {
			t.Fatal(err)
		}
	}
	ps, err := credentials.NewProfiles(credentials.Config{Store: st, MaxRetries: -1, JournalDir: t.TempDir(),
		Limiter: &credentials.EndpointLimiter{MaxConcurrent: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	for i := range profiles {
		wg.Go(func() { ps.Token(ctx, fmt.Sprintf("p%d", i)) })
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(inPause) > 0 {
		t.Fatalf("%d more calls inside the 2s Retry-After pause, at %v after the first", len(inPause), inPause)
	}
}
