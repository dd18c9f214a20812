package agent_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"

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
	const key = "0123456789abcdef-bench-key"
	f := newFixture(b, fixtureOpts{tcp: true, key: key, opts: oauthtest.Options{Rotate: true}})
	req := "GET /v1/token/default HTTP/1.1\r\nHost: 127.0.0.1\r\n" + agent.HeaderName + ": 1\r\nAuthorization: Bearer " + key + "\r\n\r\n"
	// Warm the cache: the benchmark measures the cached path.
	if code, body := f.do(b, "GET", "/v1/token/default", "", nil); code != 200 {
		b.Fatalf("warm-up: %d %s", code, body)
	}
	_, sample := f.do(b, "GET", "/v1/token/default", "", nil)

	// The baseline answers a body of the same size with the same headers.
	static := []byte(sample)
	baseline := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		h["Cache-Control"] = []string{"no-store"}
		h["X-Content-Type-Options"] = []string{"nosniff"}
		w.WriteHeader(http.StatusOK)
		w.Write(static)
	})
	bl, err := agent.ListenLoopback("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	bsrv := agent.NewServer(baseline, 0, nil)
	go bsrv.Serve(bl)
	defer bsrv.Close()

	for _, tc := range []struct {
		name string
		addr string
	}{
		{"baseline", bl.Addr().String()},
		{"agent", f.base[len("http://"):]},
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
					if err != nil || n != len(static) {
						b.Errorf("response: %d bytes, %v", n, err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
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
