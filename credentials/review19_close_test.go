package credentials_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/oauthtest"
)

// Review 19: Close races the background writer (flushLoop) finishing as
// the store comes back. Close must stop it and return, leave no goroutine
// behind, and lose no rotated token: the next process adopts it without
// reuse.
func TestReview19CloseRacesFlushLoop(t *testing.T) {
	for i := range 12 {
		f := newFixture(t, oauthtest.Options{Rotate: true})
		c1 := f.creds(t, func(c *credentials.Config) { c.LeaseTTL = 400 * time.Millisecond; c.RetryBackoff = time.Millisecond })
		f.tokenWithFault(t, c1, &f.flaky.down) // leaves a pending write and the writer running
		go func() {
			time.Sleep(time.Duration(i) * time.Millisecond)
			f.flaky.down.Store(false)
		}()
		time.Sleep(time.Duration(12-i) * time.Millisecond)
		done := make(chan struct{})
		go func() { c1.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("iteration %d: Close did not return", i)
		}
		f.flaky.down.Store(false)
		c2 := f.creds(t, nil)
		if _, err := c2.Token(context.Background()); err != nil {
			t.Fatalf("iteration %d: next process: %v", i, err)
		}
		f.checkGrant(t)
		c2.Close()
	}
	// Goroutines of Credentials (a flight, the background writer) must be
	// gone; the fixtures' servers and idle connections live until cleanup.
	buf := make([]byte, 1<<22)
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "credentials.(*Credentials)") && !strings.Contains(g, "TestReview19") {
			t.Fatalf("a Credentials goroutine outlived Close:\n%s", g)
		}
	}
}
