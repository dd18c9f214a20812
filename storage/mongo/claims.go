package mongo

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodriver "go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/tokencache/tokencache/storage/driver"
)

// useClaims reports whether conditional writes must claim their revision
// first, asking the server once when the adapter was told ClaimsAuto.
func (a *Adapter) useClaims(ctx context.Context) (bool, error) {
	switch Claims(a.claims.Load()) {
	case ClaimsOn:
		return true, nil
	case ClaimsOff:
		return false, nil
	}
	a.detectMu.Lock()
	defer a.detectMu.Unlock()
	if c := Claims(a.claims.Load()); c != ClaimsAuto {
		return c == ClaimsOn, nil
	}
	raw, err := a.client.Database("admin").RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Raw()
	if err != nil {
		// Not cached: the next write asks again.
		return false, a.fail(ctx, "buildInfo", err)
	}
	c := ClaimsOff
	if v, ok := raw.Lookup("ferretdbVersion").StringValueOK(); ok && !atomicFerretDB(v) {
		c = ClaimsOn
	}
	a.claims.Store(int32(c))
	return c == ClaimsOn, nil
}

// atomicFerretDB reports whether a FerretDB version applies filtered
// single-document writes atomically. 1.x does not (see the package
// comment); 2.x runs them as single statements in PostgreSQL with the
// DocumentDB extension. A version we cannot parse gets claims: slower,
// never wrong.
func atomicFerretDB(version string) bool {
	major, _, _ := strings.Cut(strings.TrimPrefix(version, "v"), ".")
	n, err := strconv.Atoi(major)
	return err == nil && n >= 2
}

// claimID names generation gen of the claim on key's revision rev. The
// lengths keep two different (rev, key) pairs from ever spelling one id.
func claimID(key string, rev driver.Revision, gen int) string {
	return strconv.Itoa(gen) + ":" + strconv.Itoa(len(rev)) + ":" + string(rev) + key
}

// claimedWrite is the conditional update (or, with del, delete) for
// servers whose filtered writes are not atomic: only the writer that
// claims rev writes, and the filter on rev then only has to tell a current
// revision from a superseded one, which no concurrent write can blur.
func (a *Adapter) claimedWrite(ctx context.Context, key string, rev driver.Revision, value []byte, del bool) (driver.Revision, error) {
	what := "put " + strconv.Quote(key)
	if del {
		what = "delete " + strconv.Quote(key)
	}
	conflict := driver.Wrap(driver.ErrConflict, "mongo: "+what+" if revision "+string(rev), nil)
	at, gen, err := a.claim(ctx, key, rev)
	if err != nil {
		return "", err
	}
	if at.IsZero() {
		return "", conflict
	}
	if a.now().Sub(at) > ClaimTTL/2 {
		// We were slow enough that a take-over could be near: writing now
		// could race it. Leave the claim to expire.
		return "", conflict
	}
	filter := bson.D{{Key: "_id", Value: key}, {Key: "rev", Value: string(rev)}}
	var next driver.Revision
	var matched int64
	if del {
		res, err := a.coll.DeleteOne(ctx, filter)
		if err != nil {
			return "", a.fail(ctx, what, err)
		}
		matched = res.DeletedCount
	} else {
		next = newRevision()
		res, err := a.coll.UpdateOne(ctx, filter, bson.D{{Key: "$set", Value: bson.D{
			{Key: "value", Value: encodeValue(value)},
			{Key: "rev", Value: string(next)},
		}}})
		if err != nil {
			// Whether the write happened is unknown, so the claim stays:
			// it expires if the document is still at rev.
			return "", a.fail(ctx, what, err)
		}
		matched = res.MatchedCount
	}
	// Either we moved the document off rev or it was already off it; rev
	// never comes back, so its claims protect nothing any more.
	a.dropClaims(key, rev, gen)
	if matched == 0 {
		return "", conflict
	}
	return next, nil
}

// claim inserts a claim on key's revision rev and returns when it was
// made (by this adapter's clock) and its generation, or the zero time when
// another writer holds it or rev is superseded.
//
// A claim that another writer left is judged by the newest generation
// only (an older one was taken over already), and only by how long this
// adapter has itself seen that claim, unchanged: its "at" comes from
// another machine's clock and is never compared with ours, so a writer
// whose clock is slow cannot have a live claim taken from it, nor one
// whose clock is fast block a revision for longer. Once this adapter has
// seen the newest claim for ClaimTTL it takes it over by inserting the
// next generation: an insert again, so only one writer takes it over.
// Generations are not bounded: abandoned claims delay a revision by
// ClaimTTL each round, but never block it for good.
func (a *Adapter) claim(ctx context.Context, key string, rev driver.Revision) (time.Time, int, error) {
	gen := 0
	for range maxClaimRounds {
		id := claimID(key, rev, gen)
		at := a.now()
		_, err := a.claimC.InsertOne(ctx, bson.D{
			{Key: "_id", Value: id},
			{Key: "k", Value: key},
			{Key: "r", Value: string(rev)},
			{Key: "at", Value: at}, // for an operator's eyes only
			{Key: "t", Value: string(newRevision())},
		})
		if err == nil {
			return at, gen, nil
		}
		if !mongodriver.IsDuplicateKeyError(err) {
			return time.Time{}, 0, a.fail(ctx, "claim "+strconv.Quote(key), err)
		}
		top, topID, token, err := a.newestClaim(ctx, key, rev, gen)
		if err != nil {
			return time.Time{}, 0, err
		}
		if top < 0 {
			// Its holder finished and cleaned up: rev is superseded.
			return time.Time{}, 0, nil
		}
		if !a.abandoned(topID, token) {
			return time.Time{}, 0, nil
		}
		gen = top + 1
	}
	// Another writer took the claim over at the same moment; it holds it.
	return time.Time{}, 0, nil
}

// newestClaim finds the newest generation of the claims on key's revision
// rev, starting from gen, which was there a moment ago; -1 when gen is
// gone. It walks by _id, which FerretDB can look up without scanning.
func (a *Adapter) newestClaim(ctx context.Context, key string, rev driver.Revision, gen int) (top int, id, token string, err error) {
	top = -1
	for g := gen; ; g++ {
		gid := claimID(key, rev, g)
		raw, err := a.claimC.FindOne(ctx, bson.D{{Key: "_id", Value: gid}}).Raw()
		if errors.Is(err, mongodriver.ErrNoDocuments) {
			return top, id, token, nil
		}
		if err != nil {
			return 0, "", "", a.fail(ctx, "claim "+strconv.Quote(key), err)
		}
		// The token tells a claim from another under the same _id; a claim
		// without one (an older version's) is told apart by its time.
		top, id = g, gid
		if t, ok := raw.Lookup("t").StringValueOK(); ok {
			token = t
		} else {
			token = raw.Lookup("at").String()
		}
	}
}

// abandoned reports whether this adapter has seen the claim id, with the
// same token, for ClaimTTL by its own clock; the first sighting starts
// the count.
func (a *Adapter) abandoned(id, token string) bool {
	now := a.now()
	a.seenMu.Lock()
	defer a.seenMu.Unlock()
	if s, ok := a.seen[id]; ok && s.token == token {
		if now.Sub(s.first) < ClaimTTL {
			return false
		}
		delete(a.seen, id) // taken over now; its successor is a new claim
		return true
	}
	if len(a.seen) >= maxSeenClaims {
		// Forgetting a sighting only restarts its count: it delays a take
		// -over, never hastens one.
		for k, s := range a.seen {
			if now.Sub(s.first) > 4*ClaimTTL {
				delete(a.seen, k)
			}
		}
		if len(a.seen) >= maxSeenClaims {
			clear(a.seen)
		}
	}
	if a.seen == nil {
		a.seen = map[string]sighting{}
	}
	a.seen[id] = sighting{token: token, first: now}
	return false
}

// sighting is when this adapter first saw a claim that blocked it.
type sighting struct {
	token string
	first time.Time
}

// dropClaims deletes the claims, generations 0 to gen, on a superseded
// revision in the background: they are garbage, not locks, so the caller
// need not wait for them.
func (a *Adapter) dropClaims(key string, rev driver.Revision, gen int) {
	// By _id, which FerretDB can look up without scanning the collection.
	filter := bson.D{{Key: "_id", Value: claimID(key, rev, 0)}}
	if gen > 0 {
		ids := make(bson.A, 0, gen+1)
		for g := range gen + 1 {
			ids = append(ids, claimID(key, rev, g))
		}
		filter = bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}
	}
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), ClaimTTL)
		defer cancel()
		// A failure only leaves garbage: a later claim on rev, which can
		// no longer win, finds it and reports a conflict or takes it over.
		a.claimC.DeleteMany(ctx, filter)
	}
	a.bgMu.Lock()
	defer a.bgMu.Unlock()
	if a.closed.Load() {
		// Close is waiting for bg or has disconnected; a write that was
		// already running when Close came leaves its garbage behind.
		return
	}
	a.bg.Go(drop)
}
