package mongo_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodriver "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/driver/drivertest"
	"github.com/tokencache/tokencache/storage/mongo"
)

// serverURL returns the base URL of a MongoDB wire protocol server for
// tests: FerretDB from integration/servers, or TOKENCACHE_TEST_MONGO_URI.
var serverURL = ferretDBURL

// storeURL is a URL for a fresh database on the test server with extra
// query parameters, so that tests do not see each other's documents.
func storeURL(t testing.TB, query string) string {
	t.Helper()
	base := serverURL(t)
	u := strings.TrimRight(strings.SplitN(base, "?", 2)[0], "/")
	db := fmt.Sprintf("tc_%d", time.Now().UnixNano())
	s := u + "/" + db
	if query != "" {
		s += "?" + query
	}
	return s
}

func openURL(t testing.TB, raw string) driver.Adapter {
	t.Helper()
	a, err := driver.Open(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestConformance(t *testing.T) {
	// Auto: on FerretDB 1.x this runs the claim protocol.
	raw := storeURL(t, "collection=profiles")
	drivertest.Run(t, func(t *testing.T) driver.Adapter { return openURL(t, raw) })
}

func TestConformanceClaimsOn(t *testing.T) {
	raw := storeURL(t, "claims=on")
	drivertest.Run(t, func(t *testing.T) driver.Adapter { return openURL(t, raw) })
}

// TestClaimsOffOnFerretDB records what the claim protocol is for: with
// claims off, FerretDB 1.x lets two updates filtered on one revision both
// win. It only logs, because a race that loses nothing in one run proves
// nothing either way.
func TestClaimsOffOnFerretDB(t *testing.T) {
	a := openURL(t, storeURL(t, "claims=off"))
	defer a.Close()
	ctx := context.Background()
	key := "race"
	rev, err := a.Put(ctx, key, []byte(`{"n":0}`), driver.IfAbsent())
	if err != nil {
		t.Fatal(err)
	}
	var wins atomic.Int64
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			if _, err := a.Put(ctx, key, fmt.Appendf(nil, `{"n":%d}`, i), driver.IfMatch(rev)); err == nil {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	t.Logf("claims=off: %d of 16 concurrent puts on one revision won (atomic: exactly 1)", wins.Load())
}

func TestNewKeepsClient(t *testing.T) {
	ctx := context.Background()
	client, err := mongodriver.Connect(options.Client().ApplyURI(serverURL(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(ctx)
	db := fmt.Sprintf("tc_new_%d", time.Now().UnixNano())
	a := must(mongo.New(client, &mongo.Options{Database: db, Collection: "c"}))
	if _, err := a.Put(ctx, "p", []byte(`{"profile":"p"}`), driver.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	// The document has the documented shape, readable without the adapter.
	var doc struct {
		ID    string `bson:"_id"`
		Value string `bson:"value"`
		Rev   string `bson:"rev"`
	}
	if err := client.Database(db).Collection("c").FindOne(ctx, bson.D{{Key: "_id", Value: "p"}}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc.Value != `{"profile":"p"}` || len(doc.Rev) != 32 {
		t.Fatalf("stored document %+v", doc)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Get(ctx, "p"); !errors.Is(err, driver.ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	if err := client.Ping(ctx, nil); err != nil {
		t.Fatalf("Close disconnected a client it did not make: %v", err)
	}
}

func TestNonUTF8ValueRoundTrips(t *testing.T) {
	a := openURL(t, storeURL(t, ""))
	defer a.Close()
	ctx := context.Background()
	v := []byte("{\"x\":\"\xff\xfe\"}")
	if _, err := a.Put(ctx, "bin", v, driver.Condition{}); err != nil {
		t.Fatal(err)
	}
	got, _, err := a.Get(ctx, "bin")
	if err != nil || string(got) != string(v) {
		t.Fatalf("Get = %q, %v; want %q", got, err, v)
	}
}

// TestConcurrentUnconditional checks that unconditional writes racing
// conditional ones leave a consistent document under either protocol.
func TestConcurrentUnconditional(t *testing.T) {
	for _, claims := range []string{"on", "auto"} {
		t.Run(claims, func(t *testing.T) {
			a := openURL(t, storeURL(t, "claims="+claims))
			defer a.Close()
			st := storage.NewStore(a)
			ctx := context.Background()
			var wg sync.WaitGroup
			for i := range 8 {
				wg.Go(func() {
					for j := range 10 {
						var err error
						if i%2 == 0 {
							_, err = a.Put(ctx, "k", fmt.Appendf(nil, `{"w":%d,"j":%d}`, i, j), driver.Condition{})
						} else {
							_, _, err = st.Update(ctx, "k", func(*storage.Record) error { return nil })
						}
						if err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			if _, _, err := a.Get(ctx, "k"); err != nil {
				t.Fatal(err)
			}
			if err := a.Delete(ctx, "k", driver.Condition{}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func BenchmarkStore(b *testing.B) {
	for _, claims := range []string{"auto", "off"} {
		b.Run("claims="+claims, func(b *testing.B) {
			raw := storeURL(b, "claims="+claims)
			drivertest.Benchmark(b, func(b *testing.B) driver.Adapter { return openURL(b, raw) })
		})
	}
}

// BenchmarkBaseline does with the plain driver the round trips the adapter
// makes: FindOne for a Load, FindOne then ReplaceOne for an unguarded
// read-modify-write. Compare Update with BenchmarkStore's.
func BenchmarkBaseline(b *testing.B) {
	ctx := context.Background()
	client, err := mongodriver.Connect(options.Client().ApplyURI(serverURL(b)))
	if err != nil {
		b.Fatal(err)
	}
	defer client.Disconnect(ctx)
	coll := client.Database(fmt.Sprintf("tc_base_%d", time.Now().UnixNano())).Collection("c")
	rec, err := storage.EncodeRecord(drivertest.SampleRecord("bench"))
	if err != nil {
		b.Fatal(err)
	}
	filter := bson.D{{Key: "_id", Value: "bench"}}
	doc := bson.D{{Key: "value", Value: string(rec)}, {Key: "rev", Value: "0123456789abcdef0123456789abcdef"}}
	if _, err := coll.ReplaceOne(ctx, filter, doc, options.Replace().SetUpsert(true)); err != nil {
		b.Fatal(err)
	}
	b.Run("Get", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := coll.FindOne(ctx, filter).Raw(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("GetThenSet", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := coll.FindOne(ctx, filter).Raw(); err != nil {
				b.Fatal(err)
			}
			if _, err := coll.ReplaceOne(ctx, filter, doc); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestClaimTakeover plants the claim of a writer that died between its
// claim and its write: it blocks the revision until this adapter has seen
// it for ClaimTTL, however old its time stamp, and is then taken over.
func TestClaimTakeover(t *testing.T) {
	ctx := context.Background()
	client, err := mongodriver.Connect(options.Client().ApplyURI(serverURL(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(ctx)
	db := fmt.Sprintf("tc_claim_%d", time.Now().UnixNano())
	clock := &fakeClock{t: time.Now()}
	a := must(mongo.New(client, &mongo.Options{Database: db, Collection: "c", Claims: mongo.ClaimsOn, Now: clock.now}))
	defer a.Close()
	claims := client.Database(db).Collection("c_claims")
	plant := func(key string, rev driver.Revision, at time.Time) {
		t.Helper()
		if _, err := claims.InsertOne(ctx, bson.D{
			{Key: "_id", Value: claimID(key, rev, 0)},
			{Key: "k", Value: key}, {Key: "r", Value: string(rev)}, {Key: "at", Value: at},
		}); err != nil {
			t.Fatal(err)
		}
	}

	rev, err := a.Put(ctx, "fresh", []byte(`{"n":1}`), driver.IfAbsent())
	if err != nil {
		t.Fatal(err)
	}
	plant("fresh", rev, time.Now())
	if _, err := a.Put(ctx, "fresh", []byte(`{"n":2}`), driver.IfMatch(rev)); !errors.Is(err, driver.ErrConflict) {
		t.Fatalf("Put on a freshly claimed revision: %v, want ErrConflict", err)
	}

	rev, err = a.Put(ctx, "dead", []byte(`{"n":1}`), driver.IfAbsent())
	if err != nil {
		t.Fatal(err)
	}
	plant("dead", rev, time.Now().Add(-2*mongo.ClaimTTL))
	if _, err := a.Put(ctx, "dead", []byte(`{"n":2}`), driver.IfMatch(rev)); !errors.Is(err, driver.ErrConflict) {
		t.Fatalf("Put on a revision whose claim this adapter has just met: %v, want ErrConflict", err)
	}
	clock.advance(mongo.ClaimTTL / 2)
	if _, err := a.Put(ctx, "dead", []byte(`{"n":2}`), driver.IfMatch(rev)); !errors.Is(err, driver.ErrConflict) {
		t.Fatalf("Put on a revision whose claim this adapter has seen for ClaimTTL/2: %v, want ErrConflict", err)
	}
	clock.advance(mongo.ClaimTTL/2 + time.Second)
	next, err := a.Put(ctx, "dead", []byte(`{"n":2}`), driver.IfMatch(rev))
	if err != nil {
		t.Fatalf("Put on a revision whose claim expired: %v", err)
	}
	if err := a.Delete(ctx, "dead", driver.IfMatch(next)); err != nil {
		t.Fatal(err)
	}
	// Once the background clean-up has run, no claim on the superseded
	// revisions is left.
	a.Close()
	n, err := claims.CountDocuments(ctx, bson.D{{Key: "k", Value: "dead"}})
	if err != nil || n != 0 {
		t.Fatalf("%d claims left on a finished key (%v)", n, err)
	}
}

// TestUnavailable needs no server: nothing listens on the port.
func TestUnavailable(t *testing.T) {
	ctx := context.Background()
	a, err := driver.Open(ctx, "mongodb://user:hunter2@127.0.0.1:1/db?serverSelectionTimeoutMS=200&connectTimeoutMS=200")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	_, _, err = a.Get(ctx, "p")
	if !errors.Is(err, driver.ErrUnavailable) {
		t.Fatalf("Get from a dead server: %v, want ErrUnavailable", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error shows the password: %v", err)
	}
	_, err = a.Put(ctx, "p", []byte(`{}`), driver.IfMatch("r"))
	if !errors.Is(err, driver.ErrUnavailable) {
		t.Fatalf("Put to a dead server: %v, want ErrUnavailable", err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	a2, _ := driver.Open(ctx, "mongodb://127.0.0.1:1/db")
	defer a2.Close()
	if _, _, err := a2.Get(short, "p"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get with an expiring context: %v, want context.DeadlineExceeded", err)
	}
}

// claimID is the _id of generation gen of a claim on key's revision rev,
// as the adapter names claims (a generation, then the revision's length,
// so that no two pairs of key and revision share one): the tests plant
// the claims a writer that died mid-write leaves behind.
func claimID(key string, rev driver.Revision, gen int) string {
	return strconv.Itoa(gen) + ":" + strconv.Itoa(len(rev)) + ":" + string(rev) + key
}
