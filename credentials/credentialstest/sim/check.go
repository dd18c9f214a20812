package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/internal/faultstore"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
)

// Invariant is one property every run must keep.
type Invariant int

const (
	// NoReuse: the server detected no refresh-token reuse. A reuse after
	// the grant's successor was lost for good with no grace period is not
	// the library's doing and is counted apart, as Result.Inherent: the
	// answer to a rotation never reached its client (a replica killed
	// after the rotation, a late, slow or truncated reply, the client's
	// own timeout), or its holder could not store it before its lease
	// ended (partitioned or paused then). See loss.
	NoReuse Invariant = iota
	// FinalTokenCurrent: once faults stop and replicas are closed, the
	// store (or the recovery journal) holds the server's current refresh
	// token of the grant, and the grant is not revoked.
	FinalTokenCurrent
	// OneCallPerExpiry: every refresh token generation that no fault
	// touched was presented to the server exactly once.
	OneCallPerExpiry
	// ValidHandout: every token a caller was handed was valid at the
	// server at that moment.
	ValidHandout
	// RecordIntact: the profile's record is there at the end, decodes, and
	// keeps its client id, secret and token URL.
	RecordIntact
	// Lineage: every write that reached the store (whatever its writer was
	// told) replaced the stored refresh token only with the same or a newer
	// generation of the grant, and never put an older generation back
	// into a store that lost the record.
	Lineage
	// NoPanic: no call into the library panicked (Token, Refresh and
	// Close run concurrently, as in a service shutting down).
	NoPanic
	// NoSecretInLogs: no token the server issued and no client secret
	// appears in the replicas' debug logs or in the errors callers got.
	NoSecretInLogs

	numInvariants
)

func (i Invariant) String() string {
	return [...]string{"no-reuse", "final-token-current", "one-call-per-expiry", "valid-handout",
		"record-intact", "lineage", "no-panic", "no-secret-in-logs"}[i]
}

// Faults counts what a run injected.
type Faults struct {
	Store          faultstore.Counts
	Endpoint       map[oauthtest.Fault]int
	Closes         int
	Partitions     int
	SkewedReplicas int
	KillsBefore    int // replica processes killed before the server rotated
	KillsAfter     int // ... and after
	Stalls         int // moments the process did not run for 100 ms or more (not injected: a loaded machine)
}

func (f *Faults) add(g Faults) {
	f.Store = f.Store.Add(g.Store)
	if f.Endpoint == nil {
		f.Endpoint = map[oauthtest.Fault]int{}
	}
	for k, v := range g.Endpoint {
		f.Endpoint[k] += v
	}
	f.Closes += g.Closes
	f.Partitions += g.Partitions
	f.SkewedReplicas += g.SkewedReplicas
	f.KillsBefore += g.KillsBefore
	f.KillsAfter += g.KillsAfter
	f.Stalls += g.Stalls
}

func (f Faults) String() string {
	var parts []string
	for _, k := range faultstore.Kinds() {
		parts = append(parts, fmt.Sprintf("store %s=%d", k, f.Store[k]))
	}
	for _, k := range serverFaults {
		parts = append(parts, fmt.Sprintf("endpoint %s=%d", k, f.Endpoint[k]))
	}
	parts = append(parts, fmt.Sprintf("closes=%d", f.Closes), fmt.Sprintf("partitions=%d", f.Partitions),
		fmt.Sprintf("skewed-clock replicas=%d", f.SkewedReplicas),
		fmt.Sprintf("SIGKILL before rotation=%d", f.KillsBefore), fmt.Sprintf("SIGKILL after rotation=%d", f.KillsAfter),
		fmt.Sprintf("process stalls=%d", f.Stalls))
	return strings.Join(parts, ", ")
}

// Result is what one run found.
type Result struct {
	Seed  int64
	Store string
	Tier  string

	Faults Faults
	// Violations per invariant, and a line on each (the first few).
	Broken     [numInvariants]int
	Violations []string

	Handouts     int // tokens handed out and checked
	Generations  int // refresh token generations the server saw
	CleanGens    int // ... that no fault touched
	CallerErrors map[string]int

	// Inherent counts what no client can prevent and so breaks no
	// invariant: reuse detections, a lost final token and tokens handed
	// out after the grant was revoked, once the successor of a rotation was
	// lost with no grace period (a kill after rotation, a late or
	// truncated reply).
	Inherent int
	// Hints name the likely cause of each kind of violation found, as
	// "code: explanation"; see diagnose.
	Hints []string
	// LossCause says how the grant's successor was lost for good, when it
	// was (no grace period): see loss. Empty otherwise.
	LossCause string
	// ExcusedReuses counts reuse detections after such a loss.
	ExcusedReuses int
	// Journaled counts runs that ended with the current refresh token in a
	// recovery journal rather than the store.
	Journaled int
	// WipesUnrestored counts runs whose store lost the profile too late in
	// its lease holder's lease to be put back (see wipeOutlastedLease).
	WipesUnrestored int
	// Unseen counts changes to the record by a writer outside the World
	// (the process replica), found before a later write and checked then.
	Unseen int
	// SharedMachine: two replicas ran on one machine (one clock, one
	// recovery journal). TakenOver counts pending tokens their writer
	// dropped because another process of the machine wrote its entry.
	SharedMachine bool
	TakenOver     int
	// AfterRevoke counts tokens handed out after a reuse (a violation
	// itself) revoked the grant; they make one ValidHandout violation.
	AfterRevoke int
	// SkewExpired counts tokens handed out expired, not revoked, in runs
	// whose replica clocks are skewed: the expiry stored with a token is
	// computed on the writer's clock (see the package report).
	SkewExpired int
}

// Failed reports whether any invariant broke.
func (r *Result) Failed() bool {
	for _, n := range r.Broken {
		if n > 0 {
			return true
		}
	}
	return false
}

func (r *Result) checks() string {
	var parts []string
	for i := range numInvariants {
		parts = append(parts, fmt.Sprintf("%s violations=%d", i, r.Broken[i]))
	}
	parts = append(parts, fmt.Sprintf("handouts=%d generations=%d clean=%d inherent=%d skew-expired=%d caller-errors=%v",
		r.Handouts, r.Generations, r.CleanGens, r.Inherent, r.SkewExpired, r.CallerErrors))
	return strings.Join(parts, ", ")
}

func (r *run) violate(inv Invariant, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res.Broken[inv]++
	if len(r.res.Violations) < 30 {
		r.res.Violations = append(r.res.Violations, inv.String()+": "+fmt.Sprintf(format, args...))
	}
}

func (r *run) rel(t time.Time) string { return fmt.Sprintf("%+.3fs", t.Sub(r.start).Seconds()) }

// loss returns when and how the grant's successor was first lost for good,
// with no grace period to recover it, or the zero time. The ways:
//   - the server rotated and its answer never reached the client (a kill,
//     a late, slow or truncated reply, a client timeout);
//   - the client got it but could not store it before its lease ended
//     (see holderCutOff): once the lease is over another replica may
//     refresh with the token it holds, and no lease rule can prevent that;
//   - the holder was paused past its lease (see pausedHolder);
//   - a request its client had given up on reached the server after
//     another replica rotated the token it carried, which was current when
//     it was sent.
func (r *run) loss() (at time.Time, cause string) {
	if r.sc.grace > 0 {
		return time.Time{}, ""
	}
	earlier := func(t time.Time, why string) {
		if at.IsZero() || t.Before(at) {
			at, cause = t, why
		}
	}
	plan := map[string]replicaPlan{}
	for _, p := range r.sc.replicas {
		plan[p.name] = p
	}
	r.mu.Lock()
	writes := slices.Clone(r.writes)
	callers := maps.Clone(r.callers)
	r.mu.Unlock()
	log := r.srv.RefreshLog()
	for _, e := range log {
		if e.Result == oauthtest.ResultReuse && r.arrivedAfterGivenUp(e) && r.currentWhenSent(e, log) {
			// A request delayed on its way (a stalled machine, a slow
			// network) reached the server after its client had given up
			// and another replica had rotated the token. Had the client
			// kept its lease, the late request would have rotated the
			// token unseen and the next presentation been the reuse: a
			// lost answer either way.
			earlier(e.At, "a request its client had given up on reached the server late")
			continue
		}
		if e.Result != oauthtest.ResultRotated {
			continue
		}
		if !(e.Answered && r.delivered(e.Call)) {
			switch {
			case callers[e.Call] == childReplica:
				earlier(e.At, "replica process killed after rotation")
			case e.Fault != 0:
				earlier(e.At, "answer lost to a "+e.Fault.String()+" fault")
			case r.timedOut(e, plan[callers[e.Call]]):
				earlier(e.At, "answer lost to the client's own timeout")
			}
			continue
		}
		// A holder paused or cut off from the store still has the
		// successor: the grant is lost only when another replica
		// presents the generation it spent after all.
		if r.pausedHolder(e, writes, callers, plan) {
			if t, ok := presentedAgain(e, log, callers, e.At); ok {
				earlier(t, "holder paused past its lease")
			}
			continue
		}
		if end, ok := r.holderCutOff(e, writes, callers, plan); ok {
			if t, ok := presentedAgain(e, log, callers, end); ok {
				earlier(t, "holder could not store the successor before its lease ended")
			}
		}
	}
	r.mu.Lock()
	k := r.killed
	r.mu.Unlock()
	if k != nil && k.stage == oauthtest.AfterRotate && k.rotated {
		earlier(k.at, "replica process killed after rotation")
	}
	return at, cause
}

// presentedAgain returns when another client than the maker of rotation
// e first presented the generation e spent, after from.
func presentedAgain(e oauthtest.RefreshEvent, log []oauthtest.RefreshEvent, callers map[int64]string, from time.Time) (time.Time, bool) {
	for _, x := range log {
		if x.Family == e.Family && x.Generation == e.Generation && x.Call != e.Call &&
			callers[x.Call] != callers[e.Call] && !x.At.Before(from) {
			return x.At, true
		}
	}
	return time.Time{}, false
}

// timedOut reports whether the client of call e (plan p) gave up on it
// no sooner than its endpoint timeout allows (the library never calls with
// less than half of it), or the process stalled meanwhile: a client that
// dropped the answer sooner dropped it itself.
func (r *run) timedOut(e oauthtest.RefreshEvent, p replicaPlan) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	id, ok := r.requests[e.Call]
	if !ok || p.name == "" {
		return true
	}
	sent, ok1 := r.sentAt[id]
	ended, ok2 := r.ended[id]
	if !ok1 || !ok2 || ended.Sub(sent) >= p.refreshTimeout/2-slack {
		return true
	}
	// The library's timer starts before the request reaches the
	// transport, after its lease write: on a starved machine the request
	// may set out late and meet its deadline soon after (seed 370949:
	// 350 ms between the lease and the request, a 400 ms timeout).
	var leased time.Time
	for _, w := range r.writes {
		if w.who == p.name && w.lease && w.at.Before(sent) {
			leased = w.at
		}
	}
	if !leased.IsZero() && ended.Sub(leased) >= p.refreshTimeout/2-slack {
		return true
	}
	for _, st := range r.stalls {
		if !st.to.Before(sent) && !st.from.After(ended) {
			return true
		}
	}
	return false
}

// arrivedAfterGivenUp reports whether token call e reached the server
// after its client's request had already failed.
func (r *run) arrivedAfterGivenUp(e oauthtest.RefreshEvent) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	id, ok := r.requests[e.Call]
	if !ok {
		return false
	}
	at, ok := r.gaveUp[id]
	return ok && e.At.After(at)
}

// currentWhenSent reports whether the token presented in call e was its
// grant's current one when the client sent the request: the server rotated
// it only after that. A token already spent when it was sent is a replay
// by the client, whenever the request arrives.
func (r *run) currentWhenSent(e oauthtest.RefreshEvent, log []oauthtest.RefreshEvent) bool {
	r.mu.Lock()
	sent, ok := r.sentAt[r.requests[e.Call]]
	r.mu.Unlock()
	if !ok {
		return false
	}
	for _, x := range log {
		if x.Result == oauthtest.ResultRotated && x.Family == e.Family && x.Generation == e.Generation {
			return x.At.After(sent)
		}
	}
	return false
}

// putBack is a write of a generation the server had already rotated into
// a store that had lost the record.
type putBack struct {
	at     time.Time
	who    string
	family string
	gen    int
	over   int // for an older put-back: the newest generation stored before
}

// judgeOlderPutBacks breaks Lineage for every generation written into an
// emptied store after a newer one had been stored, unless the grant's
// successor was already lost for good (see loss): then every token of the
// grant is spent or about to be, and what the store holds changes nothing.
func (r *run) judgeOlderPutBacks(loss time.Time) {
	r.mu.Lock()
	obs := slices.Clone(r.olderBacks)
	r.mu.Unlock()
	for _, pb := range obs {
		if !loss.IsZero() && !pb.at.Before(loss) {
			r.res.Inherent++
			continue
		}
		r.violate(Lineage, "at %s %s put generation %d back into an empty store, where generation %d had been",
			r.rel(pb.at), pb.who, pb.gen, pb.over)
	}
}

// judgePutBacks breaks Lineage for every spent generation written into an
// emptied store while a client knew its successor: the rotation that spent
// it was answered to its client. Only a replica that holds a token back
// after a write that failed (and may have landed) writes such a
// generation, and it could have kept it in its journal instead. When the
// rotation's answer was lost, or the grant's successor was lost for good
// before (see loss), the put-back changes nothing; with a grace period the
// server answers the spent token with the current one.
func (r *run) judgePutBacks(log []oauthtest.RefreshEvent, loss time.Time) {
	if r.sc.grace > 0 {
		return
	}
	r.mu.Lock()
	pbs := slices.Clone(r.putBacks)
	r.mu.Unlock()
	for _, pb := range pbs {
		if !loss.IsZero() && !pb.at.Before(loss) {
			continue
		}
		lost := false
		for _, x := range log {
			if x.Result == oauthtest.ResultRotated && x.Family == pb.family && x.Generation == pb.gen {
				lost = !(x.Answered && r.delivered(x.Call))
				break
			}
		}
		if !lost {
			r.violate(Lineage, "at %s %s put generation %d back into an empty store, although the server had rotated it and its client got the successor",
				r.rel(pb.at), pb.who, pb.gen)
		}
	}
}

// holderCutOff reports whether the client that got the answer to call e
// could not store the successor before its lease ended, and when that
// was: nobody stored a later generation by then, and the holder met store
// trouble (see storeTrouble) in the last stretch of its lease, when a
// holder that keeps trying (the library retries every quarter lease at
// most) must have been at it. Trouble earlier, with time left to try
// again, is no excuse: a holder that does not store in time then is the
// library's fault.
func (r *run) holderCutOff(e oauthtest.RefreshEvent, writes []storeWrite, callers map[int64]string, plan map[string]replicaPlan) (time.Time, bool) {
	who := callers[e.Call]
	p, ok := plan[who]
	if !ok {
		return time.Time{}, false
	}
	end := e.At.Add(p.leaseTTL)
	for _, w := range writes {
		if w.who == who && w.lease && w.at.Before(e.At) {
			end = w.at.Add(p.leaseTTL)
		}
	}
	for _, w := range writes {
		if w.gen > e.Generation && w.at.Before(end) {
			return time.Time{}, false
		}
	}
	late := end.Add(-min(p.leaseTTL/2, p.leaseTTL/4+slack))
	return end, r.storeTrouble(who, p, late, end)
}

// slack is the time the checks allow the library for what takes it next
// to none (a store call, waking up) on a loaded machine: the process is
// noted as stalled only when it did not run for this long.
const slack = 100 * time.Millisecond

// storeTrouble reports whether replica who (plan p) may have been unable
// to write to the store at some moment in [from, to]: it was partitioned,
// the process stalled, or one of its store calls failed, or was held by
// injected latency past to or past its store timeout. Shorter latency
// only slowed a call that went through. A dropped reply is recorded when
// the call applied, and holds its caller until the caller's deadline (at
// most the store timeout): it is trouble for all that time.
func (r *run) storeTrouble(who string, p replicaPlan, from, to time.Time) bool {
	during := func(a, b time.Time) bool { return !b.Before(from) && !a.After(to) }
	if p.partition.to > 0 && during(r.start.Add(p.partition.from), r.start.Add(p.partition.to)) {
		return true
	}
	for _, ev := range r.world.Events() {
		until := ev.At
		if ev.Kind == faultstore.DropReply {
			until = ev.At.Add(p.storeTimeout())
		}
		if ev.Replica != who || !during(ev.At, until) {
			continue
		}
		if ev.Kind == faultstore.Latency {
			if d, err := time.ParseDuration(ev.Detail); err == nil && d < p.storeTimeout() && ev.At.Add(d).Before(to) {
				continue
			}
		}
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, st := range r.stalls {
		if during(st.from, st.to) {
			return true
		}
	}
	return false
}

// wipeOutlastedLease reports whether the store's last loss of the
// profile left its lease holder no way to put the record back: the wipe
// came during the holder's token call (or just after the holder released
// its lease, when the call failed), and from when the call ended (or the
// wipe, if later) to the end of its lease there was next to no time, or
// its store calls met trouble (see storeTrouble) late enough that a
// holder retrying with exponential backoff may have given up (it stops
// when the next delay would pass the lease end: after two thirds of the
// time left at most), or it was killed. Once the lease is over no replica
// may put the record back: another may have refreshed past it before the
// wipe. A holder with time and no trouble that does not restore is the
// library's fault, and so is one that got the successor, none of whose
// writes may have landed, and does not restore it: such a write goes back
// at any time.
func (r *run) wipeOutlastedLease(log []oauthtest.RefreshEvent) bool {
	r.mu.Lock()
	writes := slices.Clone(r.writes)
	if len(r.wipes) == 0 {
		r.mu.Unlock()
		return false
	}
	w := r.wipes[len(r.wipes)-1]
	callEnd, ended := r.ended[w.req]
	killed := r.killed != nil
	requests := maps.Clone(r.requests)
	stalls := slices.Clone(r.stalls)
	r.mu.Unlock()
	if w.who == childReplica {
		return killed
	}
	learned, callAt := false, time.Time{}
	for _, e := range log {
		if id, ok := requests[e.Call]; ok && id == w.req && e.Answered && r.delivered(e.Call) &&
			(e.Result == oauthtest.ResultRotated || e.Result == oauthtest.ResultRefreshed || e.Result == oauthtest.ResultGrace) {
			learned, callAt = true, e.At
		}
	}
	var p replicaPlan
	for _, x := range r.sc.replicas {
		if x.name == w.who {
			p = x
		}
	}
	var leased, released time.Time
	for _, x := range writes {
		if x.who == w.who && x.at.Before(w.at) {
			if x.lease {
				leased, released = x.at, time.Time{}
			} else {
				released = x.at
			}
		}
	}
	if p.name == "" || leased.IsZero() {
		return false
	}
	if !learned && !released.IsZero() {
		// The wipe came after the holder had released its lease (on a
		// loaded machine the client may give up before the wipe
		// applies): it held nothing then, and no replica may put back
		// a token that another may have refreshed past since.
		return true
	}
	end := leased.Add(p.leaseTTL)
	from := w.at
	if ended && callEnd.After(from) {
		from = callEnd
	}
	if learned {
		// The successor goes back whenever no write of it may have
		// landed; only one that may have (its answer lost, or cut by
		// its deadline), before the wipe or after it, holds it back
		// once the lease is over; one made after the lease only if the
		// process was paused across the lease's end (seed 202428: its
		// write could not have gone out in time).
		pausedAtEnd := false
		for _, st := range stalls {
			pausedAtEnd = pausedAtEnd || !st.from.After(end) && !st.to.Before(end)
		}
		// A replica on the holder's machine replays the holder's journal
		// entry: its writes of the successor count as the holder's.
		machine := map[string]string{}
		for _, x := range r.sc.replicas {
			machine[x.name] = x.machine
		}
		maybeLanded := false
		for _, ev := range r.world.Events() {
			if (ev.Replica == w.who || machine[ev.Replica] != "" && machine[ev.Replica] == machine[w.who]) && ev.Op == "put" && !ev.At.Before(callAt) && (pausedAtEnd || !ev.At.After(end)) &&
				(ev.Kind == faultstore.FailAfter || ev.Kind == faultstore.DropReply || ev.Kind == faultstore.Slow) {
				maybeLanded = true
			}
		}
		if !maybeLanded {
			return false
		}
	}
	if end.Sub(from) < slack {
		return true
	}
	return r.storeTrouble(w.who, p, from.Add(end.Sub(from)/3-slack), end)
}

// pausedHolder reports whether the maker of call e was paused (the process
// did not run) past its lease: the call reached the server after the lease
// had ended, or the process stalled during the lease and the successor was
// not stored before it ended. Another replica may rightly have taken the
// lease over by then; only fencing at the server could exclude the paused
// holder.
func (r *run) pausedHolder(e oauthtest.RefreshEvent, writes []storeWrite, callers map[int64]string, plan map[string]replicaPlan) bool {
	who := callers[e.Call]
	p, ok := plan[who]
	if !ok {
		return false
	}
	var leased time.Time
	for _, w := range writes {
		if w.who == who && w.lease && w.at.Before(e.At) {
			leased = w.at
		}
	}
	if leased.IsZero() {
		return false
	}
	end := leased.Add(p.leaseTTL)
	r.mu.Lock()
	sent, known := r.sentAt[r.requests[e.Call]]
	stalledBefore := false
	for _, st := range r.stalls {
		if !st.to.Before(leased) && !st.from.After(sent) {
			stalledBefore = true
		}
	}
	r.mu.Unlock()
	if known && sent.After(end) && !stalledBefore {
		return false // sent without a lease: the library's doing
	}
	if e.At.After(end) {
		return true
	}
	// Or the process stalled while the holder had the lease, and the
	// successor was not stored before the lease ended.
	r.mu.Lock()
	stalled := false
	for _, st := range r.stalls {
		// Stalled near the end of the lease, when the write was due.
		if !st.to.Before(end.Add(-100*time.Millisecond)) && !st.from.After(end) {
			stalled = true
		}
	}
	r.mu.Unlock()
	if !stalled {
		return false
	}
	for _, w := range writes {
		if w.gen > e.Generation && w.at.Before(end) {
			return false
		}
	}
	return true
}

// checkHandout checks, as it is handed out between before and after, that
// a token is valid at the server.
func (r *run) checkHandout(who string, tok *credentials.Token, before, after time.Time) {
	r.mu.Lock()
	r.res.Handouts++
	r.mu.Unlock()
	v := tok.AccessToken.Reveal()
	iat, exp, ok := r.srv.TimesOf(v)
	if !ok {
		r.violate(ValidHandout, "%s handed out, at %s, an access token the server never issued", who, r.rel(after))
		return
	}
	at := before
	if iat.After(at) {
		at = iat
	}
	if r.srv.ValidAt(v, at) {
		return
	}
	// Judged after the run: whether a loss was inherent is known only
	// once every call the server had in hand has ended.
	r.mu.Lock()
	r.invalid = append(r.invalid, handout{who: who, at: at, after: after, exp: exp})
	r.mu.Unlock()
}

// handout is a token handed out while the server did not take it.
type handout struct {
	who            string
	at, after, exp time.Time
}

// judgeHandouts sorts the invalid hand-outs: after an inherent loss (the
// grant died of a lost successor), expired in a clock-skewed run, after a
// reuse that is itself a violation (counted once), or violations.
func (r *run) judgeHandouts(loss time.Time) {
	g, _ := r.srv.GrantOf(r.seedRT)
	r.mu.Lock()
	invalid := slices.Clone(r.invalid)
	r.mu.Unlock()
	for _, h := range invalid {
		revoked := g.Revoked && !g.RevokedAt.After(h.after)
		switch {
		case revoked && !loss.IsZero() && !loss.After(g.RevokedAt):
			r.res.Inherent++
		case !revoked && r.sc.skewed && !h.at.Before(h.exp):
			r.res.SkewExpired++
		case revoked:
			// The reuse that revoked the grant is the violation; the
			// tokens handed out from memory after it follow from it.
			r.res.AfterRevoke++
		default:
			r.violate(ValidHandout, "%s handed out, at %s, an access token that expired at %s", h.who, r.rel(h.after), r.rel(h.exp))
		}
	}
	if r.res.AfterRevoke > 0 {
		r.violate(ValidHandout, "%d tokens were handed out after the grant was revoked at %s", r.res.AfterRevoke, r.rel(g.RevokedAt))
	}
}

// check runs the invariants that look at the whole run.
func (r *run) check() {
	res := r.res
	res.Faults.Store = r.world.Counts()
	res.Faults.Endpoint = map[oauthtest.Fault]int{}
	log := r.srv.RefreshLog()
	for _, e := range log {
		if e.Fault != 0 {
			res.Faults.Endpoint[e.Fault]++
		}
	}
	for _, p := range r.sc.replicas {
		if p.closeAt > 0 && p.start < p.closeAt {
			res.Faults.Closes++
		}
		if p.partition.to > 0 {
			res.Faults.Partitions++
		}
		if p.clock != 0 {
			res.Faults.SkewedReplicas++
		}
	}
	if k := r.killed; k != nil {
		if k.stage == oauthtest.AfterRotate {
			res.Faults.KillsAfter++
		} else {
			res.Faults.KillsBefore++
		}
	}
	r.mu.Lock()
	res.Faults.Stalls = len(r.stalls)
	r.mu.Unlock()
	loss, cause := r.loss()
	res.LossCause = cause
	r.judgePutBacks(log, loss)
	r.judgeOlderPutBacks(loss)

	// No reuse.
	for _, u := range r.srv.Reuses() {
		if !loss.IsZero() && !u.At.Before(loss) {
			res.Inherent++
			res.ExcusedReuses++
			continue
		}
		r.violate(NoReuse, "at %s generation %d was presented while generation %d is current: the grant is revoked",
			r.rel(u.At), u.Generation, u.Current)
	}

	r.judgeHandouts(loss)

	// The record and the final token.
	ctx := context.Background()
	rec, _, err := r.clean.Load(ctx, profile)
	switch {
	case errors.Is(err, storage.ErrNotFound) && !loss.IsZero():
		// The grant died first: there is nothing left worth restoring.
		res.Inherent++
	case errors.Is(err, storage.ErrNotFound) && r.wipeOutlastedLease(log):
		// The store lost the profile too late in its holder's lease for
		// the holder to put it back, and after the lease nobody may.
		res.Inherent++
		res.WipesUnrestored++
	case errors.Is(err, storage.ErrNotFound):
		r.violate(RecordIntact, "the profile is gone from the store")
	case err != nil:
		r.violate(RecordIntact, "the profile does not load: %v", err)
	case rec.ClientID != clientID || rec.ClientSecret.Reveal() != clientSecret || rec.TokenURL != r.srv.TokenURL():
		r.violate(RecordIntact, "client id, secret or token URL changed")
	}
	g, _ := r.srv.GrantOf(r.seedRT)
	switch {
	case g.Revoked && !loss.IsZero():
		res.Inherent++
	case g.Revoked:
		r.violate(FinalTokenCurrent, "the grant ends revoked (at %s)", r.rel(g.RevokedAt))
	case rec == nil && !loss.IsZero():
		res.Inherent++
	case rec == nil:
		if !r.inJournal() && !r.wipeOutlastedLease(log) {
			r.violate(FinalTokenCurrent, "the store ends without the profile, so without generation %d, the current one", g.Current)
		}
	default:
		cur, _ := r.srv.CurrentRefresh(r.seedRT)
		if rec.RefreshToken.Reveal() == cur || r.inJournal() {
			break
		}
		if !loss.IsZero() || r.recoverable(log, rec.RefreshToken.Reveal()) {
			res.Inherent++
			break
		}
		if sg, ok := r.srv.GrantOf(rec.RefreshToken.Reveal()); ok && sg.Family == g.Family {
			r.violate(FinalTokenCurrent, "the store ends with generation %d; the server's current is %d (never stored: the grant is lost)", sg.Generation, g.Current)
		} else {
			r.violate(FinalTokenCurrent, "the store ends with a refresh token the server never issued for this grant")
		}
	}

	// One call per expiry.
	r.checkCallsPerGeneration(log)

	if res.Failed() {
		res.Hints = r.diagnose(log)
	}

	// No secret in logs (the callers' errors are in there too).
	logs := r.logs.Bytes()
	res.TakenOver = bytes.Count(logs, []byte("recovery journal entry of a pending refresh token is gone"))
	for _, p := range r.sc.replicas {
		res.SharedMachine = res.SharedMachine || p.machine != p.name
	}
	if len(logs) == 0 {
		r.violate(NoSecretInLogs, "nothing was logged: the check would prove nothing")
	} else if r.srv.ContainsToken(logs) {
		r.violate(NoSecretInLogs, "a token or the client secret appears in %d bytes of debug logs and caller errors", len(logs))
	}
}

// recoverable reports whether stored, not the grant's current refresh
// token, is the one whose rotation answer was lost (a late, slow or
// truncated reply) and is still inside the server's grace period: no client ever
// learned the successor, and the next refresh recovers it.
func (r *run) recoverable(log []oauthtest.RefreshEvent, stored string) bool {
	g, ok := r.srv.GrantOf(stored)
	if !ok || g.Generation != g.Current-1 || !r.srv.ValidRefresh(stored) {
		return false
	}
	for _, e := range log {
		if e.Generation == g.Generation && e.Result == oauthtest.ResultRotated {
			return !(e.Answered && r.delivered(e.Call))
		}
	}
	return false
}

func (r *run) inJournal() bool {
	cur, ok := r.srv.CurrentRefresh(r.seedRT)
	if !ok {
		return false
	}
	var dirs []string
	for _, p := range r.sc.replicas {
		if p.machine == p.name {
			dirs = append(dirs, filepath.Join(r.journals, p.machine))
		}
	}
	read := r.o.Journal
	if read == nil {
		read = readJournals
	}
	for _, s := range read(dirs, profile) {
		if s.Reveal() == cur {
			r.mu.Lock()
			r.res.Journaled++
			r.mu.Unlock()
			return true
		}
	}
	return false
}

// readJournals reads the credentials package's recovery journal entries
// for profile in dirs: one JSON file per entry whose "record" member is a
// stored Record. A file it cannot read is skipped: the check then fails
// on the token the entry would have held, which is the right outcome.
func readJournals(dirs []string, profile string) []secret.Secret {
	var out []secret.Secret
	for _, dir := range dirs {
		files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			var e struct {
				Profile string          `json:"profile"`
				Record  json.RawMessage `json:"record"`
			}
			if json.Unmarshal(b, &e) != nil || e.Profile != profile {
				continue
			}
			if rec, err := storage.DecodeRecord(e.Record); err == nil {
				out = append(out, rec.RefreshToken)
			}
		}
	}
	return out
}

// checkCallsPerGeneration: a generation is the life of one refresh token,
// from the call that rotated its predecessor to the last call presenting
// it. If no fault struck in that span (no store fault but latency, no
// endpoint fault, no lost answer, no world event, close, restart,
// partition or kill), it must have been presented exactly once.
func (r *run) checkCallsPerGeneration(log []oauthtest.RefreshEvent) {
	g, _ := r.srv.GrantOf(r.seedRT)
	plan := map[string]replicaPlan{}
	for _, p := range r.sc.replicas {
		plan[p.name] = p
	}
	r.mu.Lock()
	writes := slices.Clone(r.writes)
	callers := maps.Clone(r.callers)
	r.mu.Unlock()
	type gen struct {
		from, to time.Time
		calls    int
		faulted  bool
	}
	gens := map[int]*gen{}
	get := func(n int) *gen {
		if gens[n] == nil {
			gens[n] = &gen{}
		}
		return gens[n]
	}
	get(0).from = r.start
	for _, e := range log {
		if e.Family != g.Family {
			continue
		}
		x := get(e.Generation)
		x.calls++
		if e.At.After(x.to) {
			x.to = e.At
		}
		if e.Fault != 0 || e.Result == oauthtest.ResultFault {
			x.faulted = true
		}
		if e.Result == oauthtest.ResultRotated && !(e.Answered && r.delivered(e.Call)) {
			// The client's own timeout struck (or its process died): its
			// answer was lost as surely as to an injected fault.
			x.faulted = true
		}
		if r.arrivedAfterGivenUp(e) {
			// Its client had timed out and retried, or left it to
			// another replica: a second call for this expiry.
			x.faulted = true
		}
		if r.pausedHolder(e, writes, callers, plan) {
			x.faulted = true
		}
		if e.Result == oauthtest.ResultRotated {
			if n := get(e.Generation + 1); n.from.IsZero() {
				n.from = e.At
			}
		}
	}
	// Every disturbance, as a span of time.
	var spans []window2
	for _, e := range r.world.Events() {
		if e.Kind != faultstore.Latency {
			spans = append(spans, window2{e.At, e.At})
		}
	}
	for _, e := range log {
		// A request that reached the server after its client gave up (a
		// starved machine delivers it late) is a disturbance too.
		if e.Fault != 0 || r.arrivedAfterGivenUp(e) {
			spans = append(spans, window2{e.At, e.At})
		}
	}
	r.mu.Lock()
	for _, m := range r.timeline {
		if m.disturb {
			spans = append(spans, window2{m.at, m.at})
		}
	}
	r.mu.Unlock()
	r.mu.Lock()
	spans = append(spans, r.stalls...)
	r.mu.Unlock()
	for _, p := range r.sc.replicas {
		if p.partition.to > 0 {
			spans = append(spans, window2{r.start.Add(p.partition.from), r.start.Add(p.partition.to)})
		}
		if p.closeAt > 0 {
			spans = append(spans, window2{r.start.Add(p.closeAt), r.start.Add(p.closeAt + p.restartAfter)})
		}
	}
	keys := make([]int, 0, len(gens))
	for k := range gens {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	for _, n := range keys {
		x := gens[n]
		if x.calls == 0 {
			continue // the current generation, not presented yet
		}
		r.res.Generations++
		if x.faulted || x.from.IsZero() {
			continue
		}
		hit := false
		for _, s := range spans {
			if !s.to.Before(x.from) && !s.from.After(x.to) {
				hit = true
				break
			}
		}
		if hit {
			continue
		}
		r.res.CleanGens++
		if x.calls > 1 {
			r.violate(OneCallPerExpiry, "generation %d was presented %d times (from %s to %s) with no fault in between",
				n, x.calls, r.rel(x.from), r.rel(x.to))
		}
	}
}

type window2 struct{ from, to time.Time }

// Summary adds up the results of many runs.
type Summary struct {
	mu          sync.Mutex
	Seeds       int
	Failed      []int64
	Faults      Faults
	Broken      [numInvariants]int
	FailedBy    [numInvariants][]int64 // seeds that broke each invariant (the first 20)
	Handouts    int
	Generations int
	CleanGens   int
	Inherent    int
	SkewExpired int
	Journaled   int
	// WipesUnrestored: runs whose store lost the profile too late in a
	// lease for its holder to put it back.
	WipesUnrestored int
	// Unseen counts changes to the record by a writer outside the World
	// (the process replica), found before a later write and checked then.
	Unseen int
	// SharedMachines: runs with two replicas on one machine; TakenOver:
	// pending tokens written by another process of the machine.
	SharedMachines, TakenOver int
	Losses                    map[string]int     // runs by LossCause
	Excused                   int                // reuse detections after an inherent loss
	Causes                    map[string][]int64 // hint code -> seeds
}

// Add counts one run's result; nil (a child process's) is ignored.
func (s *Summary) Add(r *Result) {
	if r == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Seeds++
	if r.Failed() {
		s.Failed = append(s.Failed, r.Seed)
	}
	s.Faults.add(r.Faults)
	for i, n := range r.Broken {
		s.Broken[i] += n
		if n > 0 && len(s.FailedBy[i]) < 20 {
			s.FailedBy[i] = append(s.FailedBy[i], r.Seed)
		}
	}
	s.Handouts += r.Handouts
	s.Generations += r.Generations
	s.CleanGens += r.CleanGens
	s.Inherent += r.Inherent
	s.SkewExpired += r.SkewExpired
	s.Journaled += r.Journaled
	s.WipesUnrestored += r.WipesUnrestored
	s.Unseen += r.Unseen
	if r.SharedMachine {
		s.SharedMachines++
	}
	s.TakenOver += r.TakenOver
	s.Excused += r.ExcusedReuses
	if r.LossCause != "" {
		if s.Losses == nil {
			s.Losses = map[string]int{}
		}
		s.Losses[r.LossCause]++
	}
	for _, h := range r.Hints {
		code, _, _ := strings.Cut(h, ":")
		if s.Causes == nil {
			s.Causes = map[string][]int64{}
		}
		if seeds := s.Causes[code]; len(seeds) == 0 || seeds[len(seeds)-1] != r.Seed {
			s.Causes[code] = append(seeds, r.Seed)
		}
	}
}

func (s *Summary) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "simulation: %d seeds run, %d failed\n", s.Seeds, len(s.Failed))
	fmt.Fprintf(&b, "faults injected: %s\n", s.Faults)
	fmt.Fprintf(&b, "checked: %d tokens handed out, %d refresh token generations (%d untouched by faults)\n", s.Handouts, s.Generations, s.CleanGens)
	for i := range numInvariants {
		fmt.Fprintf(&b, "invariant %-20s violations %d", i, s.Broken[i])
		if len(s.FailedBy[i]) > 0 {
			fmt.Fprintf(&b, " (seeds %v)", s.FailedBy[i])
		}
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "reuse detections after the successor was lost for good with no grace period (reported apart, not violations): %d\n", s.Excused)
	causes := make([]string, 0, len(s.Losses))
	for c := range s.Losses {
		causes = append(causes, c)
	}
	sort.Strings(causes)
	for _, c := range causes {
		fmt.Fprintf(&b, "  runs whose successor was lost: %-70s %d\n", c, s.Losses[c])
	}
	fmt.Fprintf(&b, "inherent outcomes in all (those reuses, tokens handed out after them, lost final tokens): %d\n", s.Inherent)
	fmt.Fprintf(&b, "runs that ended with the current refresh token in a recovery journal, not the store: %d\n", s.Journaled)
	fmt.Fprintf(&b, "runs whose store lost the profile too late in a lease for its holder to put it back (inherent): %d\n", s.WipesUnrestored)
	fmt.Fprintf(&b, "runs with two replicas on one machine (one recovery journal): %d; pending tokens another process of the machine wrote from the journal: %d\n", s.SharedMachines, s.TakenOver)
	fmt.Fprintf(&b, "writes by the process replica, checked when the next write found them: %d\n", s.Unseen)
	fmt.Fprintf(&b, "expired tokens handed out in clock-skewed runs (reported, not counted): %d", s.SkewExpired)
	codes := make([]string, 0, len(s.Causes))
	for c := range s.Causes {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	for _, c := range codes {
		seeds := s.Causes[c]
		fmt.Fprintf(&b, "\nlikely cause %-22s %d seeds, e.g. %v", c, len(seeds), seeds[:min(len(seeds), 10)])
	}
	return b.String()
}
