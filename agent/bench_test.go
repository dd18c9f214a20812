package agent_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokencache/tokencache/agent"
	"github.com/tokencache/tokencache/oauthtest"
)

// BenchmarkServe measures cached-token requests per second over loopback
// TCP with keep-alive, beside a static-response net/http baseline served
// by the same http.Server settings and driven by the same client in the
// same run: the ratio of the two is the agent's cost.
//
//	go test -run '^$' -bench BenchmarkServe -benchtime 3s -count 3 ./agent/
//
// The client is a minimal HTTP/1.1 one (a fixed request, a response read
// by Content-Length) on one connection per worker, so that on a small
// machine the cores go to the servers rather than to the client.
func BenchmarkServe(b *testing.B) {
	agentAddr, baselineAddr, req, size := benchServers(b)
	for _, tc := range []struct {
		name string
		addr string
	}{
		{"baseline", baselineAddr},
		{"agent", agentAddr},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetParallelism(16)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				c, err := net.Dial("tcp", tc.addr)
				if err != nil {
					b.Error(err)
					return
				}
				defer c.Close()
				r := bufio.NewReaderSize(c, 4096)
				body := make([]byte, 0, 1024)
				for pb.Next() {
					if _, err := io.WriteString(c, req); err != nil {
						b.Error(err)
						return
					}
					n, err := readResponse(r, &body)
					if err != nil || n != size {
						b.Errorf("response: %d bytes, %v", n, err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}

// BenchmarkServePaired drives the agent and the baseline in alternating
// rounds of a few thousand requests each, so that a machine shared with
// other work slows both alike, and reports each one's rate and the ratio
// of the agent's time to the baseline's (the bound: 1.5).
//
//	go test -run '^$' -bench BenchmarkServePaired -benchtime 200000x ./agent/
func BenchmarkServePaired(b *testing.B) {
	agentAddr, baselineAddr, req, size := benchServers(b)
	const workers, round = 16, 4000
	type client struct {
		c    net.Conn
		r    *bufio.Reader
		body []byte
	}
	dial := func(addr string) []*client {
		var cs []*client
		for range workers {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { c.Close() })
			cs = append(cs, &client{c: c, r: bufio.NewReaderSize(c, 4096), body: make([]byte, 0, 1024)})
		}
		return cs
	}
	agents, baselines := dial(agentAddr), dial(baselineAddr)
	var failed atomic.Bool
	burst := func(cs []*client, n int) time.Duration {
		start := time.Now()
		var wg sync.WaitGroup
		for i, cl := range cs {
			k := n / workers
			if i < n%workers {
				k++
			}
			wg.Go(func() {
				for range k {
					if _, err := io.WriteString(cl.c, req); err != nil {
						failed.Store(true)
						return
					}
					if m, err := readResponse(cl.r, &cl.body); err != nil || m != size {
						failed.Store(true)
						return
					}
				}
			})
		}
		wg.Wait()
		return time.Since(start)
	}
	var tAgent, tBase time.Duration
	b.ResetTimer()
	for done, i := 0, 0; done < b.N; i++ {
		n := min(round, b.N-done)
		if i%2 == 0 {
			tBase += burst(baselines, n)
			tAgent += burst(agents, n)
		} else {
			tAgent += burst(agents, n)
			tBase += burst(baselines, n)
		}
		done += n
	}
	b.StopTimer()
	if failed.Load() {
		b.Fatal("a request failed")
	}
	b.ReportMetric(float64(b.N)/tAgent.Seconds(), "agent-req/s")
	b.ReportMetric(float64(b.N)/tBase.Seconds(), "baseline-req/s")
	b.ReportMetric(tAgent.Seconds()/tBase.Seconds(), "agent/baseline")
}

// benchServers starts an agent over a memory store with a cached token,
// and a static baseline answering a body of the same size with the same
// headers, both with NewServer's settings on loopback TCP. It returns
// their addresses, the agent request and the body size.
func benchServers(b *testing.B) (agentAddr, baselineAddr, req string, size int) {
	const key = "0123456789abcdef-bench-key"
	f := newFixture(b, fixtureOpts{tcp: true, key: key, opts: oauthtest.Options{Rotate: true}})
	req = "GET /v1/token/default HTTP/1.1\r\nHost: 127.0.0.1\r\n" + agent.HeaderName + ": 1\r\nAuthorization: Bearer " + key + "\r\n\r\n"
	// Warm the cache: the benchmark measures the cached path.
	if code, body := f.do(b, "GET", "/v1/token/default", "", nil); code != 200 {
		b.Fatalf("warm-up: %d %s", code, body)
	}
	_, sample := f.do(b, "GET", "/v1/token/default", "", nil)

	// The baseline answers a body of the same size with the same headers.
	// Its header values are shared slices, as the agent's are: the
	// baseline is the leanest net/http handler for this answer.
	static := []byte(sample)
	ct, cc, nosniff := []string{"application/json"}, []string{"no-store"}, []string{"nosniff"}
	baseline := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Type"] = ct
		h["Cache-Control"] = cc
		h["X-Content-Type-Options"] = nosniff
		w.WriteHeader(http.StatusOK)
		w.Write(static)
	})
	bl, err := agent.ListenLoopback("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	bsrv := agent.NewServer(baseline, 0, nil)
	go bsrv.Serve(bl)
	b.Cleanup(func() { bsrv.Close() })
	return f.base[len("http://"):], bl.Addr().String(), req, len(static)
}

// readResponse reads one 200 response and returns its body length.
func readResponse(r *bufio.Reader, body *[]byte) (int, error) {
	status, err := r.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	if !bytes.HasPrefix(status, []byte("HTTP/1.1 200 ")) {
		return 0, fmt.Errorf("status %q", status)
	}
	length := -1
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if len(line) <= 2 {
			break
		}
		if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
			length, err = strconv.Atoi(string(bytes.TrimSpace(v)))
			if err != nil {
				return 0, err
			}
		}
	}
	if length < 0 {
		return 0, fmt.Errorf("no Content-Length")
	}
	*body = (*body)[:length]
	_, err = io.ReadFull(r, *body)
	return length, err
}
