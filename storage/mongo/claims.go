package mongo

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodriver "go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/tokencache/tokencache/storage"
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
func claimID(key string, rev storage.Revision, gen int) string {
	return strconv.Itoa(gen) + ":" + strconv.Itoa(len(rev)) + ":" + string(rev) + key
}

// claimedWrite is the conditional update (or, with del, delete) for
// servers whose filtered writes are not atomic: only the writer that
// claims rev writes, and the filter on rev then only has to tell a current
// revision from a superseded one, which no concurrent write can blur.
func (a *Adapter) claimedWrite(ctx context.Context, key string, rev storage.Revision, value []byte, del bool) (storage.Revision, error) {
	what := "put " + strconv.Quote(key)
	if del {
		what = "delete " + strconv.Quote(key)
	}
	conflict := storage.Wrap(storage.ErrConflict, "mongo: "+what+" if revision "+string(rev), nil)
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
	var next storage.Revision
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
// made and its generation, or the zero time when another writer holds it. A claim older than
// ClaimTTL is presumed dead and taken over by inserting its next
// generation: an insert again, so only one writer takes it over.
func (a *Adapter) claim(ctx context.Context, key string, rev storage.Revision) (time.Time, int, error) {
	for gen := range maxClaimGenerations {
		id := claimID(key, rev, gen)
		at := a.now()
		_, err := a.claimC.InsertOne(ctx, bson.D{
			{Key: "_id", Value: id},
			{Key: "k", Value: key},
			{Key: "r", Value: string(rev)},
			{Key: "at", Value: at},
		})
		if err == nil {
			return at, gen, nil
		}
		if !mongodriver.IsDuplicateKeyError(err) {
			return time.Time{}, 0, a.fail(ctx, "claim "+strconv.Quote(key), err)
		}
		raw, err := a.claimC.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Raw()
		if errors.Is(err, mongodriver.ErrNoDocuments) {
			// Its holder finished and cleaned up: rev is superseded.
			return time.Time{}, 0, nil
		}
		if err != nil {
			return time.Time{}, 0, a.fail(ctx, "claim "+strconv.Quote(key), err)
		}
		held, ok := raw.Lookup("at").TimeOK()
		if ok && a.now().Sub(held) < ClaimTTL {
			return time.Time{}, 0, nil
		}
	}
	return time.Time{}, 0, nil
}

// dropClaims deletes the claims, generations 0 to gen, on a superseded
// revision in the background: they are garbage, not locks, so the caller
// need not wait for them.
func (a *Adapter) dropClaims(key string, rev storage.Revision, gen int) {
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
