// Package mongo is a storage adapter for MongoDB and servers that speak its
// wire protocol, using the official driver (go.mongodb.org/mongo-driver/v2).
//
// Each profile is one document in one collection:
//
//	{_id: "<profile>", value: "<the JSON value>", rev: "<32 hex digits>"}
//
// The value is kept as a BSON string holding the JSON text, not as an
// embedded document and not as binary. A string reads back byte for byte,
// where a round trip through a BSON document would turn JSON numbers into
// doubles or int64s (losing big integers and the difference between 1 and
// 1.0); it costs no conversion; and unlike binary an operator can still
// read it in mongosh. A value that is not valid UTF-8, which the Adapter
// contract does not produce, is stored as BSON binary instead, and both
// forms are read.
//
// The revision is 16 random bytes the client makes, not a counter: after a
// delete and re-create a counter would start again and an old revision
// could match a new document (ABA); a random revision never does.
//
// # Guarantees
//
// On MongoDB every conditional operation is one single-document operation,
// which the server applies atomically: IfAbsent is an insert that fails
// with a duplicate-key error, IfMatch an update filtered on _id and rev,
// a conditional delete a delete filtered the same way. Exactly one of any
// number of concurrent writers on one revision wins.
//
// An error does not prove that nothing was written: when the reply to an
// update, insert or delete is lost (a timeout, the caller's ctx ending, a
// connection cut after the command was sent) the call returns
// ErrUnavailable or the ctx's error while the server may have applied it.
// Callers treat such a write as possibly applied and re-read before
// deciding, as the refresh protocol's lineage rule does. ErrConflict
// always means that nothing changed.
//
// FerretDB 1.x is not atomic in that way: it answers an update or delete by
// reading the matching documents, filtering them in its own process and
// then writing by _id, so two updates filtered on the same revision can both
// match and both write (the conformance suite's concurrent increment test
// loses increments). Its inserts are atomic, guarded by the backing
// table's unique _id. On such a server the adapter therefore claims a
// revision before it changes the document: it inserts a claim document
// whose _id names the profile and the revision into a second collection,
// "<collection>_claims". Only the writer whose insert succeeds goes on to
// update or delete; every other gets ErrConflict. Because revisions are
// never reused, a claim for a revision that is no longer current is
// harmless and is deleted in the background once the write is done. A
// writer that dies between its claim and its write leaves the revision
// claimed; another writer takes the claim over once it has itself seen
// that claim, unchanged, for ClaimTTL (a claim has generations, and the
// next generation is again an insert, so exactly one writer takes it
// over). Both ends of that are measured on one machine's clock: the
// observer's from when it first saw the claim, and the holder's from just
// before its insert; a writer that finds its own claim older than half of
// ClaimTTL before it writes gives up, so that a paused writer and the one
// that took over do not both write. The time stamped in a claim is never
// compared with another machine's clock, so clock skew between machines
// can neither hand a live claim to someone else nor stretch an abandoned
// one. Only the newest generation is judged and generations are not
// bounded, so abandoned claims delay a revision by about ClaimTTL each but
// never block it for good; a process that starts after a claim was
// abandoned waits ClaimTTL from when it first meets it. The claim protocol is chosen
// automatically from the server's buildInfo (it reports ferretdbVersion
// v1.x); the "claims" URL parameter or Options.Claims forces it either way.
//
// Unconditional writes (Put and Delete with the zero Condition) are single
// operations on MongoDB. With claims they are loops of conditional ones, so
// that they too go through the claim and cannot interleave with a claimed
// write.
//
// The adapter does not implement driver.Watcher: change streams need a
// replica set, FerretDB 1.x does not have them, and a Wait that fell back
// to polling inside the adapter would override the interval that
// storage.Store.Wait already polls at.
//
// # URLs
//
//	mongodb://user:pass@host:27017/dbname?collection=tokencache&claims=auto
//	mongodb+srv://user:pass@cluster.example.net/dbname
//
// The database defaults to "tokencache" and the collection to
// "tokencache". As in every MongoDB URI, the database in the path is also
// the default authentication database (override it with authSource). The
// "collection" and "claims" parameters are removed before the URI reaches
// the driver; every other parameter is the driver's.
package mongo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodriver "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"

	"github.com/tokencache/tokencache/internal/backoff"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage/driver"
)

const (
	// DefaultDatabase and DefaultCollection apply when a URL or Options
	// name none.
	DefaultDatabase   = "tokencache"
	DefaultCollection = "tokencache"

	// ClaimTTL is how long another writer must have seen a claim before
	// it may take it over. Writes take milliseconds; the TTL only has to
	// outlast a slow network and a paused process, and it is also about
	// how long a profile stays blocked when a writer dies mid-write.
	ClaimTTL = 15 * time.Second

	// maxClaimRounds bounds one claim attempt's inserts; more than one
	// happens only when another writer takes over the same abandoned
	// claim at the same moment, and then it holds the revision.
	maxClaimRounds = 4

	// maxSeenClaims bounds the claims an adapter remembers having seen.
	maxSeenClaims = 4096
)

func init() {
	for _, scheme := range []string{"mongodb", "mongodb+srv"} {
		driver.Register(scheme, OpenURL)
	}
}

// Claims says whether conditional writes claim the revision first.
type Claims uint8

const (
	// ClaimsAuto asks the server once, before the first write: FerretDB
	// 1.x gets claims, everything else single-document operations.
	ClaimsAuto Claims = iota
	// ClaimsOff trusts the server's single-document atomicity (MongoDB).
	ClaimsOff
	// ClaimsOn always claims; correct on any server, one more round trip.
	ClaimsOn
)

// Options configure New. nil, and every zero field, mean the default.
type Options struct {
	// Database names the database; DefaultDatabase when empty.
	Database string
	// Collection names the collection; DefaultCollection when empty. The
	// claims live beside it, in Collection + "_claims".
	Collection string
	// Claims overrides the automatic choice of the claim protocol.
	Claims Claims
	// Now is the clock that claims' ages are measured by, time.Now when
	// nil: a test can let ClaimTTL pass without waiting for it. Only
	// differences between two readings of this one clock are used.
	Now func() time.Time
}

// Adapter implements driver.Adapter over one collection.
type Adapter struct {
	client *mongodriver.Client
	coll   *mongodriver.Collection
	claimC *mongodriver.Collection
	own    bool // Close disconnects the client

	claims   atomic.Int32 // a Claims; Auto until detected
	detectMu sync.Mutex

	closed atomic.Bool
	bgMu   sync.Mutex     // orders bg.Add after Close's bg.Wait
	bg     sync.WaitGroup // claim clean-ups still running
	now    func() time.Time

	// seen holds when this adapter first saw each claim that blocked it,
	// by claim _id: a claim's age is judged by the observer's own clock.
	seenMu sync.Mutex
	seen   map[string]sighting
}

// New returns an adapter over a collection through client, which the
// caller keeps owning: Close does not disconnect it. nil opts means the
// defaults. It does no I/O.
func New(client *mongodriver.Client, opts *Options) (*Adapter, error) {
	if client == nil {
		return nil, driver.Wrap(driver.ErrInvalid, "mongo: no client", nil)
	}
	if opts == nil {
		opts = &Options{}
	}
	db, collection := opts.Database, opts.Collection
	if db == "" {
		db = DefaultDatabase
	}
	if collection == "" {
		collection = DefaultCollection
	}
	d := client.Database(db)
	a := &Adapter{
		client: client,
		coll:   d.Collection(collection),
		claimC: d.Collection(collection + "_claims"),
		now:    time.Now,
	}
	a.claims.Store(int32(opts.Claims))
	if opts.Now != nil {
		a.now = opts.Now
	}
	return a, nil
}

// OpenURL makes the MongoDB client a mongodb:// or mongodb+srv:// URL
// describes (see the package documentation) and an Adapter over it, which
// owns it: Close disconnects the client. It does not connect; the first
// call does. It is the opener the package registers for "mongodb" and
// "mongodb+srv".
func OpenURL(ctx context.Context, u *url.URL) (*Adapter, error) {
	redacted := secret.RedactURL(u.String())
	q := u.Query()
	coll := q.Get("collection")
	if coll == "" {
		coll = DefaultCollection
	}
	var claims Claims
	switch v := q.Get("claims"); v {
	case "", "auto":
		claims = ClaimsAuto
	case "on", "true", "1":
		claims = ClaimsOn
	case "off", "false", "0":
		claims = ClaimsOff
	default:
		return nil, driver.Wrap(driver.ErrInvalid, fmt.Sprintf("mongo: store URL %q: claims=%q, want auto, on or off", redacted, v), nil)
	}
	q.Del("collection")
	q.Del("claims")
	du := *u
	du.RawQuery = q.Encode()
	db := strings.TrimPrefix(du.Path, "/")
	if db == "" {
		db = DefaultDatabase
		// The driver reads the path as the database too; give it the same
		// default so that authentication and data agree.
		du.Path = "/" + db
	}
	if strings.Contains(db, "/") {
		return nil, driver.Wrap(driver.ErrInvalid, fmt.Sprintf("mongo: store URL %q: database name %q contains '/'", redacted, db), nil)
	}
	// Connect only parses and starts monitoring; it does no I/O that could
	// fail, so a store that is down now can be used once it is back.
	client, err := mongodriver.Connect(options.Client().ApplyURI(du.String()))
	if err != nil {
		// The driver's parse errors can quote the URI, password included.
		return nil, driver.Wrap(driver.ErrInvalid, fmt.Sprintf("mongo: store URL %q is not a valid MongoDB URI", redacted), nil)
	}
	a, err := New(client, &Options{Database: db, Collection: coll, Claims: claims})
	if err != nil {
		client.Disconnect(context.Background())
		return nil, err
	}
	a.own = true
	return a, nil
}

// newRevision makes a revision no other write has used or will use.
func newRevision() driver.Revision {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand since Go 1.24)
	return driver.Revision(hex.EncodeToString(b[:]))
}

// encodeValue chooses the BSON form of a value; see the package comment.
func encodeValue(v []byte) any {
	if utf8.Valid(v) {
		return string(v)
	}
	return bson.Binary{Subtype: 0, Data: v}
}

func (a *Adapter) alive(ctx context.Context, op string) error {
	if a.closed.Load() {
		return driver.Wrap(driver.ErrClosed, "mongo: "+op, nil)
	}
	return ctx.Err()
}

// Get implements driver.Adapter.
func (a *Adapter) Get(ctx context.Context, key string) ([]byte, driver.Revision, error) {
	if err := a.alive(ctx, "get"); err != nil {
		return nil, "", err
	}
	raw, err := a.coll.FindOne(ctx, bson.D{{Key: "_id", Value: key}}).Raw()
	if errors.Is(err, mongodriver.ErrNoDocuments) {
		return nil, "", driver.Wrap(driver.ErrNotFound, "mongo: get "+strconv.Quote(key), nil)
	}
	if err != nil {
		return nil, "", a.fail(ctx, "get "+strconv.Quote(key), err)
	}
	return decodeDoc(key, raw)
}

func decodeDoc(key string, raw bson.Raw) ([]byte, driver.Revision, error) {
	rev, ok := raw.Lookup("rev").StringValueOK()
	if !ok || rev == "" {
		return nil, "", driver.Wrap(driver.ErrCorrupt, "mongo: document "+strconv.Quote(key)+" has no string rev", nil)
	}
	v := raw.Lookup("value")
	if s, ok := v.StringValueOK(); ok {
		return []byte(s), driver.Revision(rev), nil
	}
	if _, b, ok := v.BinaryOK(); ok {
		return append([]byte(nil), b...), driver.Revision(rev), nil
	}
	return nil, "", driver.Wrap(driver.ErrCorrupt, "mongo: document "+strconv.Quote(key)+" has no string or binary value", nil)
}

// Put implements driver.Adapter.
func (a *Adapter) Put(ctx context.Context, key string, value []byte, cond driver.Condition) (driver.Revision, error) {
	if err := a.alive(ctx, "put"); err != nil {
		return "", err
	}
	what := "put " + strconv.Quote(key)
	switch cond.Kind {
	case driver.Absent:
		return a.insert(ctx, key, value)
	case driver.Match:
		claims, err := a.useClaims(ctx)
		if err != nil {
			return "", err
		}
		if claims {
			return a.claimedWrite(ctx, key, cond.Revision, value, false)
		}
		return a.update(ctx, key, cond.Revision, value)
	}
	claims, err := a.useClaims(ctx)
	if err != nil {
		return "", err
	}
	if claims {
		var rev driver.Revision
		err := retryConflicts(ctx, func() error {
			_, cur, err := a.Get(ctx, key)
			switch {
			case errors.Is(err, driver.ErrNotFound):
				rev, err = a.insert(ctx, key, value)
			case err == nil:
				rev, err = a.claimedWrite(ctx, key, cur, value, false)
			}
			return err
		})
		return rev, err
	}
	rev := newRevision()
	doc := bson.D{{Key: "value", Value: encodeValue(value)}, {Key: "rev", Value: string(rev)}}
	upsert := options.Replace().SetUpsert(true)
	_, err = a.coll.ReplaceOne(ctx, bson.D{{Key: "_id", Value: key}}, doc, upsert)
	if mongodriver.IsDuplicateKeyError(err) {
		// Two upserts of a missing key both tried to insert; the loser's
		// retry finds the document and replaces it.
		_, err = a.coll.ReplaceOne(ctx, bson.D{{Key: "_id", Value: key}}, doc, upsert)
	}
	if err != nil {
		return "", a.fail(ctx, what, err)
	}
	return rev, nil
}

func (a *Adapter) insert(ctx context.Context, key string, value []byte) (driver.Revision, error) {
	rev := newRevision()
	_, err := a.coll.InsertOne(ctx, bson.D{
		{Key: "_id", Value: key},
		{Key: "value", Value: encodeValue(value)},
		{Key: "rev", Value: string(rev)},
	})
	if mongodriver.IsDuplicateKeyError(err) {
		return "", driver.Wrap(driver.ErrConflict, "mongo: put "+strconv.Quote(key)+" if absent", nil)
	}
	if err != nil {
		return "", a.fail(ctx, "put "+strconv.Quote(key), err)
	}
	return rev, nil
}

// update is the conditional write for servers with atomic single-document
// updates: the filter on rev and the write are one operation.
func (a *Adapter) update(ctx context.Context, key string, rev driver.Revision, value []byte) (driver.Revision, error) {
	next := newRevision()
	res, err := a.coll.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: key}, {Key: "rev", Value: string(rev)}},
		bson.D{{Key: "$set", Value: bson.D{
			{Key: "value", Value: encodeValue(value)},
			{Key: "rev", Value: string(next)},
		}}})
	if err != nil {
		return "", a.fail(ctx, "put "+strconv.Quote(key), err)
	}
	if res.MatchedCount == 0 {
		return "", driver.Wrap(driver.ErrConflict, "mongo: put "+strconv.Quote(key)+" if revision "+string(rev), nil)
	}
	return next, nil
}

// Delete implements driver.Adapter.
func (a *Adapter) Delete(ctx context.Context, key string, cond driver.Condition) error {
	if err := a.alive(ctx, "delete"); err != nil {
		return err
	}
	what := "delete " + strconv.Quote(key)
	switch cond.Kind {
	case driver.Absent:
		// Deleting an absent key changes nothing, so this is a read.
		_, _, err := a.Get(ctx, key)
		switch {
		case errors.Is(err, driver.ErrNotFound):
			return nil
		case err != nil:
			return err
		}
		return driver.Wrap(driver.ErrConflict, "mongo: "+what+" if absent", nil)
	case driver.Match:
		claims, err := a.useClaims(ctx)
		if err != nil {
			return err
		}
		if claims {
			_, err := a.claimedWrite(ctx, key, cond.Revision, nil, true)
			return err
		}
		res, err := a.coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: key}, {Key: "rev", Value: string(cond.Revision)}})
		if err != nil {
			return a.fail(ctx, what, err)
		}
		if res.DeletedCount == 0 {
			return driver.Wrap(driver.ErrConflict, "mongo: "+what+" "+cond.String(), nil)
		}
		return nil
	}
	claims, err := a.useClaims(ctx)
	if err != nil {
		return err
	}
	if claims {
		return retryConflicts(ctx, func() error {
			_, cur, err := a.Get(ctx, key)
			switch {
			case errors.Is(err, driver.ErrNotFound):
				return nil
			case err != nil:
				return err
			}
			_, err = a.claimedWrite(ctx, key, cur, nil, true)
			return err
		})
	}
	if _, err := a.coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: key}}); err != nil {
		return a.fail(ctx, what, err)
	}
	return nil
}

// List implements driver.Adapter.
func (a *Adapter) List(ctx context.Context) ([]string, error) {
	if err := a.alive(ctx, "list"); err != nil {
		return nil, err
	}
	cur, err := a.coll.Find(ctx, bson.D{}, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, a.fail(ctx, "list", err)
	}
	defer cur.Close(context.WithoutCancel(ctx))
	var keys []string
	for cur.Next(ctx) {
		// Documents with other _id types are not ours; skip rather than fail.
		if k, ok := cur.Current.Lookup("_id").StringValueOK(); ok {
			keys = append(keys, k)
		}
	}
	if err := cur.Err(); err != nil {
		return nil, a.fail(ctx, "list", err)
	}
	return keys, nil
}

// Close implements driver.Adapter. It disconnects the client only when
// the adapter made it (Open); a client passed to New stays the caller's.
func (a *Adapter) Close() error {
	a.bgMu.Lock()
	wasClosed := a.closed.Swap(true)
	a.bgMu.Unlock()
	if wasClosed {
		return nil
	}
	a.bg.Wait()
	if !a.own {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.client.Disconnect(ctx); err != nil {
		return a.fail(ctx, "close", err)
	}
	return nil
}

// fail maps a driver error to the storage sentinels. The driver's errors
// name hosts and keys but never values, so they can be kept as the cause.
func (a *Adapter) fail(ctx context.Context, what string, err error) error {
	msg := "mongo: " + what
	if ctxErr := ctx.Err(); ctxErr != nil {
		// The driver reports a cancelled call in several shapes (server
		// selection, a cut connection); the caller's context is the cause.
		return driver.Wrap(ctxErr, msg, ctxErr)
	}
	var sse topology.ServerSelectionError
	var se mongodriver.ServerError
	// Anything unrecognised (a replica stepping down, a write concern
	// error) is a server that cannot do the operation now.
	kind := driver.ErrUnavailable
	switch {
	case errors.Is(err, mongodriver.ErrClientDisconnected), errors.Is(err, topology.ErrTopologyClosed):
		kind = driver.ErrClosed
	case errors.As(err, &sse), mongodriver.IsNetworkError(err), mongodriver.IsTimeout(err):
		kind = driver.ErrUnavailable
	case errors.As(err, &se) && se.HasErrorCode(13): // Unauthorized
		kind = driver.ErrReadOnly
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		// The driver's own timeouts (serverSelectionTimeoutMS, timeoutMS)
		// are contexts too, but the caller's context is fine: this is an
		// outage, and driver.Wrap would call it a cancellation.
		err = detached{err}
	}
	return driver.Wrap(kind, msg, err)
}

// detached keeps an error's text and type but not its chain, for a cause
// that would otherwise match context.DeadlineExceeded.
type detached struct{ error }

// retryConflicts runs fn until it does not return ErrConflict, backing off
// with jitter after the first few rounds, for the unconditional writes that
// claims turn into loops.
func retryConflicts(ctx context.Context, fn func() error) error {
	for attempt := 0; ; attempt++ {
		err := fn()
		if !errors.Is(err, driver.ErrConflict) {
			return err
		}
		if attempt >= 2 {
			if err := backoff.Sleep(ctx, backoff.Jitter(time.Millisecond<<min(attempt-2, 6))); err != nil {
				return err
			}
		}
	}
}
