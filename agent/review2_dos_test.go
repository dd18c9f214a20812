package agent_test

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokencache/tokencache/agent"
	"github.com/tokencache/tokencache/oauthtest"
)

// Over loopback TCP any local user can connect, key or not. One request
// without the key (here /healthz, which needs none) turns a connection
// into an idle keep-alive one that the agent holds for IdleTimeout (2 min),
// and every held connection takes one of MaxConns slots. A user without
// the key who holds MaxConns such connections (re-sending a request now
// and then) makes every legitimate client's connection wait in the
// listen backlog: no tokens for anyone.
func TestReview2UnauthenticatedIdleConnsExhaustTCPAgent(t *testing.T) {
	f := newFixture(t, fixtureOpts{tcp: true, key: "0123456789abcdef-key", opts: oauthtest.Options{Rotate: true}})
	addr := strings.TrimPrefix(f.base, "http://")
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i := 0; i < agent.MaxConns; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("conn %d: %v", i, err)
		}
		held = append(held, c)
		if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("conn %d: %v", i, err)
		}
		resp.Body.Close()
	}
	// A legitimate client with the key.
	cl := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	req, _ := http.NewRequest("GET", f.base+"/v1/token/default/raw", nil)
	req.Header.Set(agent.HeaderName, "1")
	req.Header.Set("Authorization", "Bearer "+f.key)
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatalf("a client with the key got no answer while %d keyless idle connections were held: %v", len(held), err)
	}
	resp.Body.Close()
}
