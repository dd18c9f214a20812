package credentials_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/memory"
)

// scaleToken stands in for an access token: 64 bytes, the length of a
// short opaque token (JWTs run to several hundred bytes, which a cached
// profile holds on top of the figures below).
var scaleToken = strings.Repeat("t", 64)

// scaleStores are the stores one process can hold many profiles in. The
// file store is pancloud's credentials.json, one JSON document that every
// write reads, rewrites and fsyncs whole: seeding n profiles writes O(n²)
// bytes, so it is measured at 1,000 profiles; 10,000 is not what it is for.
func scaleStores() []struct {
	name string
	n    int
	open func(tb testing.TB) func() *storage.Store
} {
	dirStore := func(scheme, file string) func(tb testing.TB) func() *storage.Store {
		return func(tb testing.TB) func() *storage.Store {
			u := scheme + "://" + filepath.Join(tb.TempDir(), file)
			return func() *storage.Store {
				st, err := storage.Open(context.Background(), u)
				if err != nil {
					tb.Fatal(err)
				}
				return st
			}
		}
	}
	return []struct {
		name string
		n    int
		open func(tb testing.TB) func() *storage.Store
	}{
		{"memory", 10_000, func(tb testing.TB) func() *storage.Store {
			name := fmt.Sprintf("%s-%d", tb.Name(), time.Now().UnixNano())
			return func() *storage.Store { return storage.NewStore(memory.New(&memory.Options{Name: name})) }
		}},
		{"sqlite", 10_000, dirStore("sqlite", "tokens.db")},
		{"file", 1_000, dirStore("file", "credentials.json")},
	}
}

// seedValid writes n profiles that hold a valid access token, so that
// caching them needs no token server.
func seedValid(tb testing.TB, st *storage.Store, n int) []string {
	tb.Helper()
	names := make([]string, n)
	expiry := time.Now().Add(time.Hour)
	for i := range names {
		names[i] = fmt.Sprintf("tenant-%05d", i)
		_, _, err := st.Update(context.Background(), names[i], func(r *storage.Record) error {
			*r = storage.Record{Profile: names[i], ClientID: "client-" + names[i], ClientSecret: "secret",
				RefreshToken: "refresh-" + secret.Secret(names[i]), TokenURL: "http://127.0.0.1:1/token",
				AccessToken: secret.Secret(scaleToken), Expiry: expiry}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
	return names
}

// cacheAll has one Profiles serve every name once and returns it with the
// heap it holds per cached profile: the live heap after a collection, less
// the live heap before the Profiles existed.
func cacheAll(tb testing.TB, st *storage.Store, names []string) (*credentials.Profiles, float64) {
	tb.Helper()
	before := liveHeap()
	p, err := credentials.NewProfiles(credentials.Config{Store: st})
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	for _, name := range names {
		if _, err := p.Token(ctx, name); err != nil {
			tb.Fatal(err)
		}
	}
	after := liveHeap()
	runtime.KeepAlive(p)
	return p, (float64(after) - float64(before)) / float64(len(names))
}

func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkScale caches every profile of a large store in one Profiles
// and reports the heap each cached profile costs and how long listing the
// store takes. An op is caching them all (one store read each).
//
//	go test -run '^$' -bench BenchmarkScale -benchtime 1x ./credentials/
func BenchmarkScale(b *testing.B) {
	for _, s := range scaleStores() {
		b.Run(fmt.Sprintf("%s-%d", s.name, s.n), func(b *testing.B) {
			open := s.open(b)
			seed := open()
			names := seedValid(b, seed, s.n)
			seed.Close()
			var perProfile float64
			var list time.Duration
			for b.Loop() {
				st := open()
				p, bytes := cacheAll(b, st, names)
				perProfile += bytes
				t0 := time.Now()
				got, err := p.List(context.Background())
				list += time.Since(t0)
				if err != nil || len(got) != s.n {
					b.Fatalf("List: %d names, %v", len(got), err)
				}
				p.Close()
				st.Close() // Profiles.Close leaves it open
			}
			b.ReportMetric(perProfile/float64(b.N), "B/profile")
			b.ReportMetric(float64(list.Microseconds())/1e3/float64(b.N), "ms/List")
		})
	}
}

// TestScaleMemoryPerProfile bounds the heap a cached profile costs at the
// scale target's 2 KB, so that growth (a per-profile goroutine, timer or
// buffer) fails a test. Today a profile costs about 1.2 KB.
func TestScaleMemoryPerProfile(t *testing.T) {
	const bound = 2 << 10
	for _, s := range scaleStores() {
		if s.name != "memory" && testing.Short() {
			continue
		}
		t.Run(s.name, func(t *testing.T) {
			// The per-profile figure does not depend on the count, and
			// seeding the disk stores is what takes time (the file store's
			// quadratically): BenchmarkScale runs the full counts.
			n := map[string]int{"memory": s.n, "sqlite": 1_000, "file": 200}[s.name]
			open := s.open(t)
			st := open()
			defer st.Close() // runs after p.Close
			names := seedValid(t, st, n)
			p, perProfile := cacheAll(t, st, names)
			defer p.Close()
			t0 := time.Now()
			got, err := p.List(context.Background())
			if err != nil || len(got) != n {
				t.Fatalf("List: %d names, %v", len(got), err)
			}
			t.Logf("%d profiles cached: %.0f B/profile (heap), List %v", n, perProfile, time.Since(t0))
			if perProfile > bound {
				t.Fatalf("%.0f bytes of heap per cached profile, want at most %d", perProfile, bound)
			}
		})
	}
}

const soakChildEnv = "TOKENCACHE_SOAK_SERVER"

// soakServerInfo is what the soak's token server process tells the test.
type soakServerInfo struct {
	TokenURL string   `json:"token_url"`
	StatsURL string   `json:"stats_url"`
	Refresh  []string `json:"refresh"`
}

// TestSoak runs 1,000 Token calls a second across 50 profiles of one
// Profiles for TOKENCACHE_SOAK (default 5s), with 1 s access tokens and
// rotating refresh tokens, so that refreshes, waits and background
// renewals happen throughout; then checks that nothing grew: goroutines,
// live heap (waiters, timers and flights all hold some), and that the
// server saw no reuse. For the long soak:
//
//	TOKENCACHE_SOAK=10m go test -run TestSoak -timeout 15m ./credentials/
//
// The token server runs in a child process because it keeps every token it
// ever issued; in this process that would be heap growth not ours.
func TestSoak(t *testing.T) {
	if os.Getenv(soakChildEnv) != "" {
		soakServer(t)
		return
	}
	dur := 5 * time.Second
	if v := os.Getenv("TOKENCACHE_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("TOKENCACHE_SOAK: %v", err)
		}
		dur = d
	}
	const profiles, perSecond, workers = 50, 1000, 20

	child := exec.Command(os.Args[0], "-test.run=^TestSoak$", "-test.count=1")
	child.Env = append(os.Environ(), soakChildEnv+"="+fmt.Sprint(profiles))
	child.Stderr = os.Stderr
	stdin, _ := child.StdinPipe()
	stdout, _ := child.StdoutPipe()
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); child.Wait() }()
	var info soakServerInfo
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if json.Unmarshal(sc.Bytes(), &info) == nil && info.TokenURL != "" {
			break
		}
	}
	if info.TokenURL == "" {
		t.Fatal("the token server process did not start")
	}
	go io.Copy(io.Discard, stdout)

	st := storage.NewStore(memory.New(nil))
	defer st.Close() // runs after p.Close
	names := make([]string, profiles)
	for i := range names {
		names[i] = fmt.Sprintf("soak-%02d", i)
		_, _, err := st.Update(context.Background(), names[i], func(r *storage.Record) error {
			*r = storage.Record{Profile: names[i], ClientID: "soak-client", ClientSecret: "soak-secret",
				RefreshToken: secret.Secret(info.Refresh[i]), TokenURL: info.TokenURL}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 8}
	p, err := credentials.NewProfiles(credentials.Config{Store: st, HTTPClient: &http.Client{Transport: tr, Timeout: 10 * time.Second},
		Skew: 200 * time.Millisecond, LeaseTTL: 5 * time.Second, PollInterval: 20 * time.Millisecond, RetryBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	// Warm up: every profile has its Credentials and a token, so that what
	// is measured next is steady state.
	run := func(d time.Duration) (calls, failed int64) {
		var c, f atomic.Int64
		var wg sync.WaitGroup
		stop := time.Now().Add(d)
		for w := range workers {
			wg.Go(func() {
				tick := time.NewTicker(time.Second * workers / perSecond)
				defer tick.Stop()
				for i := w; time.Now().Before(stop); i += workers {
					<-tick.C
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					if _, err := p.Token(ctx, names[i%profiles]); err != nil {
						f.Add(1)
						t.Errorf("Token(%s): %v", names[i%profiles], err)
					}
					cancel()
					c.Add(1)
				}
			})
		}
		wg.Wait()
		return c.Load(), f.Load()
	}
	run(2 * time.Second)
	g0, h0 := settle(tr)
	start := time.Now()
	calls, failed := run(dur)
	elapsed := time.Since(start)
	g1, h1 := settle(tr)

	stats := soakStats(t, info.StatsURL)
	t.Logf("soak %v: %d Token calls (%.0f/s), %d failed; %d refreshes at the server (%.1f/s), %d reuse detections; goroutines %d -> %d, live heap %d -> %d KiB",
		elapsed.Round(time.Millisecond), calls, float64(calls)/elapsed.Seconds(), failed, stats.RefreshCalls,
		float64(stats.RefreshCalls)/(elapsed+2*time.Second).Seconds(), stats.ReuseDetections, g0, g1, h0>>10, h1>>10)
	if stats.ReuseDetections != 0 {
		t.Errorf("%d reuse detections", stats.ReuseDetections)
	}
	if stats.RefreshCalls < int64(profiles) {
		t.Errorf("only %d refreshes: tokens did not expire during the soak", stats.RefreshCalls)
	}
	// A flight or an HTTP connection may be alive at either instant; a
	// leak of one goroutine per refresh or per waiter would be hundreds.
	if g1 > g0+10 {
		t.Errorf("goroutines grew from %d to %d", g0, g1)
	}
	if h1 > h0+256<<10 {
		t.Errorf("live heap grew from %d to %d KiB", h0>>10, h1>>10)
	}
}

// settle returns the fewest goroutines seen over a second, with the live
// heap: flights and HTTP connections come and go during background
// renewals, and what must not grow is what stays.
func settle(tr *http.Transport) (goroutines int, heap uint64) {
	goroutines = runtime.NumGoroutine()
	for range 20 {
		// Connections still busy a moment ago are idle now.
		tr.CloseIdleConnections()
		time.Sleep(50 * time.Millisecond)
		goroutines = min(goroutines, runtime.NumGoroutine())
	}
	return goroutines, liveHeap()
}

func soakStats(t *testing.T, u string) oauthtest.Stats {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s oauthtest.Stats
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// soakServer is the child: a token server with 1 s tokens and rotation,
// a stats endpoint, and a grant per profile; it runs until stdin closes.
func soakServer(t *testing.T) {
	var n int
	fmt.Sscan(os.Getenv(soakChildEnv), &n)
	srv := oauthtest.NewServer(oauthtest.Options{AccessTTL: time.Second, Rotate: true})
	defer srv.Close()
	srv.SetLatency(20 * time.Millisecond)
	srv.AddClient("soak-client", "soak-secret")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(srv.Stats())
	}))
	info := soakServerInfo{TokenURL: srv.TokenURL(), StatsURL: "http://" + ln.Addr().String() + "/stats"}
	for range n {
		info.Refresh = append(info.Refresh, srv.IssueRefreshToken("soak-client"))
	}
	b, _ := json.Marshal(info)
	fmt.Printf("%s\n", b)
	io.Copy(io.Discard, os.Stdin)
}
