package credentials

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tokencache/tokencache/internal/backoff"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
)

// What happens to a refreshed record. persist writes it under our lease;
// while the store is down, persistDurably keeps trying for as long as the
// lease keeps other refreshers away, then puts the record in the recovery
// journal; a pending record is retried in the background and by every
// flight, and Close reports one it could not write. Every write goes
// through the store's lineage rule, so a late write never replaces a newer
// token: it is dropped as superseded.

// ErrUnpersisted means a rotated refresh token is not in the store. See
// UnpersistedError.
var ErrUnpersisted = errors.New("credentials: rotated refresh token not written to the store")

// UnpersistedError reports a rotated refresh token that the store did not
// take. When Journal names a file the token is safe there, and the next
// Credentials of the same store and profile on this machine writes it to
// the store before it refreshes; otherwise it lives only in this process.
type UnpersistedError struct {
	Profile string
	Journal string // the recovery journal entry; "" when there is none
	Err     error  // why the store did not take it
}

func (e *UnpersistedError) Error() string {
	where := "it is held only in memory and is lost if this process exits"
	if e.Journal != "" {
		where = "it is kept in the recovery journal " + e.Journal + " and will be written by the next process that uses the profile on this machine"
	}
	return fmt.Sprintf("credentials: profile %q: rotated refresh token not written to the store (%v); %s", e.Profile, e.Err, where)
}

func (e *UnpersistedError) Unwrap() []error { return []error{ErrUnpersisted, e.Err} }

// pendingWrite is a refreshed record the store has not taken yet.
type pendingWrite struct {
	rec      *storage.Record // with our lease, until leaseEnd
	journal  string          // entry path, "" if not journalled; set once
	err      error           // the last store error
	leaseEnd time.Time       // when our lease stops excluding other refreshers
	// notApplied: no failed write of rec may have been applied, so no
	// other process can have read it (storage.ErrNotApplied).
	notApplied bool
}

// A write that failed may still have reached the store (its reply was
// lost, it timed out after sending): other replicas may have read the
// token it carried, spent it, and stored a successor. If the store then
// loses the profile (a cache evicts it, a server restarts empty), putting
// that token back would hand them a spent token, and the server revokes
// the grant on its reuse.
//
// So the refreshed record is written with our lease still on it, and the
// lease is cleared by a second write once the first is known to have
// landed (clearLease). Other replicas adopt the new access token at once,
// lease or not, but none refreshes past it while the lease lasts, not even
// a forced refresh: waiters count the lease from when they first see it,
// on their own clocks, which is after we took it. Until the lease ends on
// our clock, then, a record held back after a failed write can safely be
// put back into an emptied store; after that, only if every failed write
// of it certainly changed nothing (storage.ErrNotApplied: no other
// process can have read it). Otherwise it stays in the recovery journal
// and the error says so, for an operator who knows no other replica
// refreshed. Token age is no guide: a replica whose clock runs ahead, or
// a forced refresh, spends a token long before it is due.
//
// The alternative, restoring it anyway, trades a rare loss of the grant
// (the store lost the profile after a write whose outcome is unknown, and
// no other replica had read it) for a rare replay that revokes it for
// every replica; the first is visible and recoverable from the journal,
// the second is neither.
var errHeldBack = driver.Wrap(storage.ErrUnavailable, "the store lost the profile after a write of this refresh token failed; it may have landed and been used by another replica, so it is not put back automatically", nil)

// Why a refreshed record was not written over the stored one.
var (
	// errSuperseded: the store holds a later token of the same grant.
	errSuperseded = driver.Wrap(storage.ErrLineage, "the store holds a newer refresh token of the same grant", nil)
	// errForeign: the store holds another grant (a new login, a re-seeded
	// or re-created profile, or another store of the same name): ours
	// does not belong there.
	errForeign = driver.Wrap(storage.ErrLineage, "the store holds another grant", nil)
)

// applySuccessor puts ours, a record this process refreshed, into cur, the
// stored record, when ours descends from it:
//
//   - cur is empty: the store lost the profile (a server restarted empty,
//     a cache evicted it); ours is restored whole if restore is set (our
//     lease still excludes other refreshers, or no write of ours may have
//     landed), else errHeldBack (see there).
//   - cur holds the token ours replaced: ours is its successor.
//   - cur holds ours already: only the access token may be newer.
//   - cur holds an older generation of the same grant (by its grant id,
//     or for a record without one, a token ours' Spent list names): a
//     store restored from an old snapshot; ours is the only live token
//     (again only if restore is set, unless cur is ours' direct
//     predecessor).
//
// Otherwise it returns errSuperseded or errForeign and changes nothing.
// The store's lineage check applies on top.
func (c *Credentials) applySuccessor(cur, ours *storage.Record, restore bool) error {
	sameGrant := cur.Lineage.Grant != "" && cur.Lineage.Grant == ours.Lineage.Grant
	// older: a store rolled back under ours. A record without a grant id
	// tells it by ours having seen the token it holds (a rotation of ours
	// spent it).
	older := sameGrant && ours.Lineage.Gen > cur.Lineage.Gen || ours.HasSeen(cur.RefreshToken.Reveal())
	predecessor := sameGrant && ours.Lineage.Gen == cur.Lineage.Gen+1
	switch {
	case vanished(cur) && !restore:
		return errHeldBack
	case vanished(cur):
		*cur = *ours.Clone()
		return nil
	case cur.RefreshToken == ours.RefreshToken:
	case ours.Succeeds(cur):
		cur.Rotate(ours.RefreshToken.Reveal())
	case older && !predecessor && !restore:
		// Rolled back past our predecessor: as for an emptied store.
		return errHeldBack
	case older:
		cur.RefreshToken, cur.Lineage.Gen, cur.Lineage.Spent = ours.RefreshToken, ours.Lineage.Gen, ours.Lineage.Spent
	case cur.Lineage.Grant == ours.Lineage.Grant:
		return errSuperseded
	default:
		return errForeign
	}
	cur.AccessToken, cur.TokenType, cur.Expiry, cur.IssuedAt = ours.AccessToken, ours.TokenType, ours.Expiry, ours.IssuedAt
	if cur.Lease == nil || cur.Lease.Owner == c.owner {
		cur.Lease = ours.Lease // ours, or none once it has ended
	}
	return nil
}

// persist writes the refreshed record over the lease revision, or, if the
// record changed meanwhile, over whatever is stored now, as lineage allows.
// superseded means the store holds a newer token than ours: ours is
// dropped, which is right, since the newer one descends from a later spend.
// restore says whether ours may be put into a store that lost the profile.
func (c *Credentials) persist(ctx context.Context, leased *storage.Record, leaseRev storage.Revision, rec *storage.Record, restore bool) (written *storage.Record, rev storage.Revision, err error) {
	written = rec
	rev, err = c.store.Replace(ctx, leased, leaseRev, rec)
	if errors.Is(err, storage.ErrConflict) {
		written, rev, err = c.store.UpdateLease(ctx, c.cfg.Profile, func(cur *storage.Record) error { return c.applySuccessor(cur, rec, restore) })
	}
	if errors.Is(err, storage.ErrLineage) {
		c.cfg.Logger.Warn("the store holds a newer refresh token than the one just refreshed; keeping the store's",
			"profile", c.cfg.Profile)
		// Our lease may still be there (a seed replaced the grant, and
		// Store.Update keeps leases): do not make the others wait it out.
		c.dropOwnLease(ctx)
		return nil, "", nil
	}
	return written, rev, err
}

// clearLease takes our lease off the record we wrote at rev, now that it
// is known to be in the store. Other replicas adopted the token it
// carries already (a lease keeps them from refreshing, not from reading);
// if this fails the lease lapses by itself.
func (c *Credentials) clearLease(ctx context.Context, written *storage.Record, rev storage.Revision) {
	if written == nil || written.Lease == nil || written.Lease.Owner != c.owner {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.StoreTimeout)
	defer cancel()
	next := written.Clone()
	next.Lease = nil
	_, err := c.store.Replace(ctx, written, rev, next)
	if errors.Is(err, storage.ErrConflict) {
		err = c.dropOwnLease(ctx)
	}
	if err != nil && !errors.Is(err, storage.ErrAbort) {
		c.cfg.Logger.Debug("could not clear the lease after the write; it will lapse", "profile", c.cfg.Profile, "err", err)
	}
}

// persistDurably makes rec durable before its access token is handed out.
// It writes rec to the store; if the store fails, the recovery journal
// takes it at once and the store write is retried in the background.
// Without a journal (none configured, or it cannot be written) it keeps
// trying the store until leaseEnd, after which another refresher may act
// on the old token, or until the flight is cancelled. The error is nil
// once rec is durable.
func (c *Credentials) persistDurably(flightCtx context.Context, leased *storage.Record, leaseRev storage.Revision, rec *storage.Record, leaseEnd time.Time) error {
	keep := context.WithoutCancel(flightCtx)
	journalled, triedJournal, unapplied := "", false, true
	var err error
	for attempt := 0; ; attempt++ {
		wctx, cancel := context.WithTimeout(keep, c.cfg.StoreTimeout)
		written, rev, perr := c.persist(wctx, leased, leaseRev, rec, unapplied || c.cfg.Now().Before(leaseEnd))
		cancel()
		if err = perr; err == nil {
			c.clearLease(keep, written, rev)
			return nil
		}
		unapplied = unapplied && notApplied(err)
		if !triedJournal && c.journal.enabled() {
			triedJournal = true
			if path, jerr := c.journal.save(c.store.Name(), rec, unapplied); jerr == nil {
				journalled = path
				break
			} else {
				c.cfg.Logger.Error("cannot write the recovery journal; retrying the store while the lease lasts", "profile", c.cfg.Profile, "err", jerr)
			}
		}
		d := backoff.Exponential(c.cfg.RetryBackoff, attempt)
		if !retryableStore(err) || c.cfg.Now().Add(d+c.cfg.StoreTimeout).After(leaseEnd) || backoff.Sleep(flightCtx, d) != nil {
			break
		}
	}
	return c.keepPending(&pendingWrite{rec: rec, journal: journalled, err: err, leaseEnd: leaseEnd, notApplied: unapplied})
}

// notApplied reports whether a failed write certainly changed nothing in
// the store.
func notApplied(err error) bool {
	return errors.Is(err, storage.ErrNotApplied) || errors.Is(err, storage.ErrConflict) ||
		errors.Is(err, storage.ErrLineage) || errors.Is(err, errHeldBack)
}

// retryableStore reports whether a store error may go away by itself.
func retryableStore(err error) bool {
	return errors.Is(err, storage.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, storage.ErrConflict)
}

// keepPending holds p for the background writer and every later flight,
// and returns nil when it is durable in the journal, or an
// *UnpersistedError when it is only in memory.
func (c *Credentials) keepPending(p *pendingWrite) error {
	path, perr := p.journal, p.err // the flush loop started below may change p.err
	log := c.cfg.Logger.With("profile", c.cfg.Profile, "err", perr)
	if path == "" {
		log.Error("store unavailable and no recovery journal: the rotated refresh token is held in memory only")
	} else {
		log.Warn("store unavailable: the rotated refresh token is in the recovery journal until the store takes it", "journal", path)
	}
	c.mu.Lock()
	old := c.pending
	c.pending = p
	start := !c.flushing && !c.closed
	var fctx context.Context
	if start {
		c.flushing = true
		fctx, c.stopFlush = context.WithCancel(context.Background())
		c.wg.Add(1) // under mu: Close waits only for what it can see
	}
	c.mu.Unlock()
	if old != nil {
		// Ours descends from it, and lineage keeps the newer one anyway.
		c.journal.remove(old.journal)
	}
	if start {
		go c.flushLoop(fctx)
	}
	if path == "" {
		return &UnpersistedError{Profile: c.cfg.Profile, Err: perr}
	}
	return nil
}

// flushLoop retries the pending record in the background until the store
// takes it or Close cancels ctx.
func (c *Credentials) flushLoop(ctx context.Context) {
	defer c.wg.Done()
	for attempt := 0; ; attempt++ {
		c.flushPending(ctx)
		c.mu.Lock()
		if c.pending == nil || ctx.Err() != nil {
			c.flushing = false
			c.stopFlush()
			c.stopFlush = nil
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		// Capped well inside a lease: when the store answers again, the
		// token must be there before another replica's lease wait ends.
		backoff.Sleep(ctx, min(backoff.Exponential(c.cfg.RetryBackoff, attempt), c.cfg.LeaseTTL/4))
	}
}

// flushPending writes the pending record, if any, under the lineage rule.
// It returns an error only while the record could not be written; a
// record the store has moved past is dropped.
func (c *Credentials) flushPending(ctx context.Context) error {
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	c.mu.Lock()
	p := c.pending
	c.mu.Unlock()
	if p == nil {
		return nil
	}
	c.mu.Lock()
	path, unapplied, leaseEnd := p.journal, p.notApplied, p.leaseEnd
	c.mu.Unlock()
	var entry *heldEntry
	if path != "" {
		// The entry is shared with the other processes of this machine:
		// write under its lock, by what it says now.
		var err error
		entry, err = c.holdEntry(ctx, path)
		if err != nil && !errors.Is(err, storage.ErrCorrupt) {
			c.mu.Lock()
			p.err = err
			c.mu.Unlock()
			return &UnpersistedError{Profile: c.cfg.Profile, Journal: path, Err: err}
		}
		if entry == nil {
			// Gone: another process wrote it (the store has it, or has
			// moved past it), or someone moved it aside or damaged it.
			// Either way a write of it may have landed and been
			// refreshed past since, our lease or not: from now on it
			// goes only onto the token it replaced, never into a store
			// that lost the profile. Our copy is intact.
			c.cfg.Logger.Info("the recovery journal entry of a pending refresh token is gone or unreadable (another process wrote it, or it was moved); written only as a successor from now on",
				"profile", c.cfg.Profile, "journal", path, "err", err)
			c.mu.Lock()
			p.journal, p.notApplied, p.leaseEnd = "", false, time.Time{}
			c.mu.Unlock()
			path, unapplied, leaseEnd = "", false, time.Time{}
		} else {
			unapplied = unapplied && entry.notApplied
		}
	}
	rec, inLease := p.rec, c.cfg.Now().Before(leaseEnd)
	if !inLease && rec.Lease != nil {
		// Our lease is over: writing it now would only make others wait.
		rec = rec.Clone()
		rec.Lease = nil
	}
	wctx, cancel := context.WithTimeout(ctx, c.cfg.StoreTimeout)
	written, rev, err := c.store.UpdateLease(wctx, c.cfg.Profile, func(cur *storage.Record) error { return c.applySuccessor(cur, rec, inLease || unapplied) })
	cancel()
	done := true
	switch {
	case errors.Is(err, errForeign):
		// Not ours to write, and not ours to delete: the entry stays for
		// the store it belongs to, or an operator, saying what it said.
		done = false
		if entry != nil {
			c.entryNotLanded(entry)
		}
		c.cfg.Logger.Warn("a pending refresh token belongs to another grant than the store's; left in the recovery journal",
			"profile", c.cfg.Profile, "journal", path)
	case errors.Is(err, storage.ErrLineage):
		c.cfg.Logger.Info("a pending refresh token was superseded by a newer one in the store; dropped", "profile", c.cfg.Profile)
	case err != nil:
		c.mu.Lock()
		if !notApplied(err) {
			p.notApplied = false // it may have landed and been read
		}
		p.err = err
		c.mu.Unlock()
		if entry != nil {
			if notApplied(err) {
				c.entryNotLanded(entry)
			}
			entry.release(false)
		}
		return &UnpersistedError{Profile: c.cfg.Profile, Journal: path, Err: err}
	default:
		c.cfg.Logger.Info("rotated refresh token written after a store outage", "profile", c.cfg.Profile)
	}
	if entry != nil {
		entry.release(done)
	}
	c.dropPending(p)
	if err == nil {
		c.clearLease(ctx, written, rev) // after the entry's lock: it is not needed for this
	}
	return nil
}

// holdEntry locks the journal entry at path for a write (see heldEntry),
// waiting for another holder up to two store timeouts: about the longest
// it holds the lock, for one store write and two entry rewrites.
func (c *Credentials) holdEntry(ctx context.Context, path string) (*heldEntry, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*c.cfg.StoreTimeout)
	defer cancel()
	return c.journal.hold(ctx, path)
}

// entryNotLanded records in a held entry that its write changed nothing.
func (c *Credentials) entryNotLanded(e *heldEntry) {
	if err := e.notLanded(); err != nil {
		// It keeps claiming that a write may have landed: it is then
		// restored into an emptied store only within its lease.
		c.cfg.Logger.Error("cannot rewrite the recovery journal entry", "profile", c.cfg.Profile, "journal", e.path, "err", err)
	}
}

// dropPending forgets p, which the store has, or has moved past.
func (c *Credentials) dropPending(p *pendingWrite) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending == p {
		c.pending = nil
		// The failure that held refreshes off was this write.
		c.failures, c.holdOff, c.lastErr = 0, time.Time{}, nil
	}
}

// replayJournal writes entries a process on this machine journalled for
// this store and profile (perhaps this one before a restart). Each is
// applied under the lineage rule and removed once the store has it or has
// moved past it. An entry that cannot be written stays for the next try.
//
// The newest generation goes first: an older one is spent, and written
// into a store that lost the profile it would sit there, without a lease,
// until the newer entry's write replaced it, for any replica to read and
// present again.
func (c *Credentials) replayJournal(ctx context.Context) error {
	type entry struct {
		path string
		gen  uint64
	}
	var todo []entry
	for _, path := range c.journal.entries() {
		if rec, _, err := c.journal.load(path); err == nil {
			todo = append(todo, entry{path, rec.Lineage.Gen})
		} else {
			c.cfg.Logger.Error("unreadable recovery journal entry left in place", "profile", c.cfg.Profile, "journal", path, "err", err)
		}
	}
	slices.SortStableFunc(todo, func(a, b entry) int { return cmp.Compare(b.gen, a.gen) })
	for _, e := range todo {
		if err := c.replayEntry(ctx, e.path); err != nil {
			return err
		}
	}
	return nil
}

// replayEntry writes one journal entry under its lock, read afresh: its
// writer (still running, perhaps) or another replaying process may have
// written it meanwhile, or learnt that a write of it may have landed.
func (c *Credentials) replayEntry(ctx context.Context, path string) error {
	entry, err := c.holdEntry(ctx, path)
	if err != nil {
		if errors.Is(err, storage.ErrCorrupt) {
			c.cfg.Logger.Error("unreadable recovery journal entry left in place", "profile", c.cfg.Profile, "journal", path, "err", err)
			return nil
		}
		return &UnpersistedError{Profile: c.cfg.Profile, Journal: path, Err: err}
	}
	if entry == nil {
		return nil // written by another process
	}
	rec := entry.rec
	// The entry carries its writer's lease, taken on this machine's
	// clock: while it lasts, no replica can have refreshed past the
	// entry's token, and it may go back into an emptied store. It is not
	// written: it is not ours.
	restore := entry.notApplied || (rec.Lease != nil && c.cfg.Now().Before(rec.Lease.Until))
	rec.Lease = nil
	wctx, cancel := context.WithTimeout(ctx, c.cfg.StoreTimeout)
	err = c.update(wctx, func(cur *storage.Record) error { return c.applySuccessor(cur, rec, restore) })
	cancel()
	c.journalReplayed(err)
	switch {
	case errors.Is(err, errForeign):
		// Another grant's, or another store's of the same name: leave it
		// as it was.
		c.entryNotLanded(entry)
		entry.release(false)
		return nil
	case err == nil:
		c.cfg.Logger.Info("rotated refresh token replayed from the recovery journal", "profile", c.cfg.Profile, "journal", path)
	case errors.Is(err, storage.ErrLineage):
		c.cfg.Logger.Info("recovery journal entry superseded by the store; removed", "profile", c.cfg.Profile, "journal", path)
	default:
		if notApplied(err) {
			c.entryNotLanded(entry)
		}
		entry.release(false)
		return &UnpersistedError{Profile: c.cfg.Profile, Journal: path, Err: err}
	}
	entry.release(true)
	return nil
}

// vanished reports whether a record read for a write is the store's
// stand-in for a profile it lost: nothing but the name.
func vanished(r *storage.Record) bool {
	return r.ClientID == "" && r.RefreshToken == "" && r.AccessToken == ""
}

// dropOwnLease clears the stored record's lease if it is ours; ErrAbort
// if it is not (gone, or another replica's).
func (c *Credentials) dropOwnLease(ctx context.Context) error {
	return c.update(ctx, func(cur *storage.Record) error {
		if cur.Lease == nil || cur.Lease.Owner != c.owner {
			return storage.ErrAbort
		}
		cur.Lease = nil
		return nil
	})
}

// update is the protocol's read-modify-write (storage.Store.UpdateLease:
// fn may change the lease).
func (c *Credentials) update(ctx context.Context, fn func(*storage.Record) error) error {
	_, _, err := c.store.UpdateLease(ctx, c.cfg.Profile, fn)
	return err
}

// releaseLease clears our lease after a failed refresh so that another
// process need not wait for it to lapse; losing the race is fine. If the
// store lost the profile meanwhile (evicted, a server restarted empty),
// the record we leased goes back: its refresh token may be the only copy
// left (a failed call may still be in its reuse grace period), and while
// our lease lasts no replica can have refreshed past it. A write that
// certainly did not land is tried again while the lease lasts. One that
// may have landed is not: it may have released the lease (or restored
// the record without one), another replica may have refreshed past it
// since, and a second restore would put a spent token back. The lease
// then lapses by itself.
//
// park, when not zero, keeps our lease on the record for that long instead
// of clearing it (see parkFor): the record leased, with our lease renewed
// for the pause, under the same rules.
func (c *Credentials) releaseLease(ctx context.Context, leased *storage.Record, leaseRev storage.Revision, leaseEnd time.Time, park time.Duration) {
	next := leased.Clone()
	next.Lease = nil
	if park > 0 {
		next.Lease = &storage.Lease{Owner: c.owner, Until: c.cfg.Now().Add(park), TTL: storage.Duration(park)}
	}
	var err error
	for attempt := 0; ; attempt++ {
		// Each try ends with the lease: a restore must land while it lasts.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(leaseEnd.Sub(c.cfg.Now()), c.cfg.StoreTimeout))
		_, err = c.store.Replace(wctx, leased, leaseRev, next)
		if errors.Is(err, storage.ErrConflict) {
			err = c.update(wctx, func(cur *storage.Record) error {
				// A lease alone is no loss: a replica with a Grant took
				// the emptied profile over, and it is refreshing now.
				if !vanished(cur) || cur.Lease != nil || !c.cfg.Now().Before(leaseEnd) {
					return storage.ErrAbort
				}
				*cur = *next
				return nil
			})
		}
		cancel()
		if errors.Is(err, storage.ErrAbort) {
			return
		}
		d := backoff.Exponential(c.cfg.RetryBackoff, attempt)
		if err == nil || !notApplied(err) || !retryableStore(err) || c.cfg.Now().Add(d).After(leaseEnd) || backoff.Sleep(ctx, d) != nil {
			break
		}
	}
	if err != nil {
		c.cfg.Logger.Debug("could not release lease; it will lapse", "profile", c.cfg.Profile, "err", err)
	}
}
