package sim

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/tokencache/tokencache/internal/faultstore"
	"github.com/tokencache/tokencache/oauthtest"
)

// diagnose names the likely cause of a failed run's violations from the
// store's write history, who made each endpoint call, and the harness's
// events. The codes refer to issue 11's numbered list; the heuristics are
// a reading aid for long runs, not a proof: check the schedule.
func (r *run) diagnose(log []oauthtest.RefreshEvent) []string {
	r.mu.Lock()
	writes := slices.Clone(r.writes)
	callers := maps.Clone(r.callers)
	timeline := slices.Clone(r.timeline)
	r.mu.Unlock()
	var hints []string
	seen := map[string]bool{}
	hint := func(code, format string, args ...any) {
		if seen[code] {
			return
		}
		seen[code] = true
		hints = append(hints, code+": "+fmt.Sprintf(format, args...))
	}
	plan := map[string]replicaPlan{}
	for _, p := range r.sc.replicas {
		plan[p.name] = p
	}

	// #1: a write that put an older generation back.
	for i, w := range writes {
		if !w.backward {
			continue
		}
		landed := false // the writer had already stored this generation, and was told it failed
		for _, e := range writes[:i] {
			if e.who == w.who && e.gen == w.gen && !e.lease && e.told >= 0 {
				landed = true
			}
		}
		switch {
		case landed:
			hint("1-flush-overwrite", "%s wrote generation %d back at %s: its first write of it had landed though it was told %s, and the held-back retry (flushPending) overwrote the newer token",
				w.who, w.gen, r.rel(w.at), faultstore.FailAfter)
		case w.gen >= 0 && r.storedGenBefore(writes, i) < 0:
			hint("6-restore-older", "%s put generation %d back into a store that had lost the record (restore of a held-back write)", w.who, w.gen)
		default:
			hint("1-stale-write", "%s wrote generation %d over a newer one at %s (a held-back write or a persist without the lineage rule)", w.who, w.gen, r.rel(w.at))
		}
	}

	// #5: the same generation presented twice, the second time inside
	// the first presenter's lease.
	first := map[int]oauthtest.RefreshEvent{} // the call that spent each generation
	for _, e := range log {
		if e.Family == "" || e.Result == oauthtest.ResultFault || e.Result == oauthtest.ResultUnanswered {
			continue
		}
		f, ok := first[e.Generation]
		if !ok {
			if e.Result == oauthtest.ResultRotated {
				first[e.Generation] = e
			}
			continue
		}
		if e.Result != oauthtest.ResultReuse && e.Result != oauthtest.ResultGrace {
			continue // the grant was gone already
		}
		x, y := callers[f.Call], callers[e.Call]
		if x == y || x == "" || y == "" || !f.Answered || !r.delivered(f.Call) || r.backwardBefore(writes, e.At) {
			continue // a lost answer or a stale write explains it (see #1)
		}
		px, py := plan[x], plan[y]
		if e.At.Sub(f.At) < px.leaseTTL && py.leaseTTL < px.leaseTTL {
			hint("5-lease-takeover", "%s (LeaseTTL %v) presented generation %d %v after %s (LeaseTTL %v) did: it timed the other's lease with its own",
				y, py.leaseTTL, e.Generation, e.At.Sub(f.At).Round(time.Millisecond), x, px.leaseTTL)
		} else {
			hint("5-double-spend", "%s presented generation %d %v after %s did, without a stale write in between",
				y, e.Generation, e.At.Sub(f.At).Round(time.Millisecond), x)
		}
	}

	// #2: a generation presented again after the replica that rotated it
	// was closed before it stored the successor.
	for _, u := range r.srv.Reuses() {
		for _, e := range log {
			if e.Generation != u.Generation || e.Result != oauthtest.ResultRotated {
				continue
			}
			x := callers[e.Call]
			storedBy := false
			for _, w := range writes {
				if w.who == x && w.gen > u.Generation && w.at.After(e.At) && w.at.Before(u.At) {
					storedBy = true
				}
			}
			for _, m := range timeline {
				if m.who == x && m.what == "Close" && m.at.After(e.At) && m.at.Before(u.At) && !storedBy {
					hint("2-close-dropped", "%s rotated generation %d at %s and was closed at %s before it had stored the successor: Close dropped the pending write, and generation %d was presented again at %s",
						x, u.Generation, r.rel(e.At), r.rel(m.at), u.Generation, r.rel(u.At))
				}
			}
			break
		}
	}

	// #6 and #2: the store ends without the current generation.
	g, _ := r.srv.GrantOf(r.seedRT)
	if g.Revoked {
		return hints
	}
	stored := false
	for _, w := range writes {
		if w.gen == g.Current {
			stored = true
		}
	}
	var lastDelete time.Time
	for _, w := range writes {
		if w.who == "world" && w.gen < 0 {
			lastDelete = w.at
		}
	}
	var rotator string
	var rotatedAt time.Time
	for _, e := range log {
		if e.Result == oauthtest.ResultRotated && e.Generation == g.Current-1 {
			rotator, rotatedAt = callers[e.Call], e.At
		}
	}
	switch {
	case r.storedGen < 0 && !lastDelete.IsZero():
		hint("6-vanished-mid-refresh", "the store lost the profile at %s while a refresh was at the server; no replica wrote the record back (a refresher restores it only while its lease lasts, or a held-back token known not to have landed)", r.rel(lastDelete))
	case !stored && rotator != "":
		closed := false
		for _, m := range timeline {
			if m.who == rotator && m.what == "Close" && m.at.After(rotatedAt) {
				closed = true
			}
		}
		if closed {
			hint("2-close-dropped", "%s rotated to generation %d at %s and was closed before it could write it: Close dropped the pending write", rotator, g.Current, r.rel(rotatedAt))
		} else {
			hint("2-never-written", "%s rotated to generation %d at %s and never wrote it, not even after the faults stopped", rotator, g.Current, r.rel(rotatedAt))
		}
	}
	return hints
}

// storedGenBefore is the generation the store held before writes[i]: 0
// (the seed) before the first write, -1 after a delete.
func (r *run) storedGenBefore(writes []storeWrite, i int) int {
	if i == 0 {
		return 0
	}
	return writes[i-1].gen
}

func (r *run) backwardBefore(writes []storeWrite, t time.Time) bool {
	for _, w := range writes {
		if w.backward && w.at.Before(t) {
			return true
		}
	}
	return false
}
