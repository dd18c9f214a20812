package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/tokencache/tokencache/internal/httpsafe"
)

// noticeDelay is how long a wait for another process's lease may last
// before the CLI says whom it waits for: the few milliseconds a storm of
// processes waits for its refresher are not worth a line.
const noticeDelay = time.Second

// leaseNotice is the slog handler the CLI gives credentials.Config.Logger.
// It drops every record but the library's "waiting for lease holder", and
// turns the first of those into one line on stderr, if the wait is still
// on after noticeDelay: who holds the lease (host and pid, from the owner
// id credentials writes as host/pid/random) and how long the wait may last
// at most. Silent waits of up to a lease TTL looked like hangs.
type leaseNotice struct {
	mu       sync.Mutex
	w        io.Writer
	deadline time.Time // the command's --timeout, zero for none
	timer    *time.Timer
	done     bool // printed, or the command finished
}

func (n *leaseNotice) handler() slog.Handler { return noticeHandler{n} }

// stop ends the notice: the command is past its wait.
func (n *leaseNotice) stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.done = true
	if n.timer != nil {
		n.timer.Stop()
	}
}

func (n *leaseNotice) waiting(owner string, wait time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.done || n.timer != nil {
		return
	}
	seen := time.Now()
	n.timer = time.AfterFunc(noticeDelay, func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.done {
			return
		}
		n.done = true
		end, why := seen.Add(wait), "when its lease ends"
		if !n.deadline.IsZero() && n.deadline.Before(end) {
			end, why = n.deadline, "when --timeout ends"
		}
		left := (time.Until(end) + time.Second - 1).Truncate(time.Second) // rounded up: never "0s"
		fmt.Fprintf(n.w, "tokencache: waiting for %s, which holds the refresh lease: at most %s more, until %s (%s); if it is dead, \"tokencache lease clear\" ends the wait\n",
			httpsafe.Printable(describeOwner(owner)), left, end.UTC().Format(time.TimeOnly+"Z"), why)
	})
}

// describeOwner reads a lease owner id ("host/pid/random") as "pid P on
// host H"; other ids (other libraries, older versions) are quoted as is.
func describeOwner(owner string) string {
	parts := strings.Split(owner, "/")
	if len(parts) == 3 && parts[1] != "" {
		return fmt.Sprintf("pid %s on host %s", parts[1], parts[0])
	}
	return fmt.Sprintf("%q", owner)
}

type noticeHandler struct{ n *leaseNotice }

func (h noticeHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h noticeHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h noticeHandler) WithGroup(string) slog.Handler            { return h }

func (h noticeHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "waiting for lease holder" {
		return nil
	}
	var owner string
	var wait time.Duration
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "owner":
			owner = a.Value.String()
		case "for":
			if a.Value.Kind() == slog.KindDuration {
				wait = a.Value.Duration()
			}
		}
		return true
	})
	h.n.waiting(owner, wait)
	return nil
}
