package mongo_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodriver "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/mongo"
)

// fakeClock is an adapter's clock that a test moves on by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// claimFixture is a database with a claims adapter whose clock the test
// drives, and a way to plant the claims other writers leave.
type claimFixture struct {
	a      *mongo.Adapter
	clock  *fakeClock
	claims *mongodriver.Collection
}

func newClaimFixture(t *testing.T) *claimFixture {
	t.Helper()
	client, err := mongodriver.Connect(options.Client().ApplyURI(serverURL(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Disconnect(context.Background()) })
	db := fmt.Sprintf("tc_claims_%d", time.Now().UnixNano())
	clock := &fakeClock{t: time.Now()}
	a := must(mongo.New(client, &mongo.Options{Database: db, Collection: "c", Claims: mongo.ClaimsOn, Now: clock.now}))
	t.Cleanup(func() { a.Close() })
	return &claimFixture{a: a, clock: clock, claims: client.Database(db).Collection("c_claims")}
}

// plant inserts generation gen of a claim on key's revision rev, stamped
// at, as another writer's adapter would.
func (f *claimFixture) plant(t *testing.T, key string, rev driver.Revision, gen int, at time.Time) {
	t.Helper()
	if _, err := f.claims.InsertOne(context.Background(), bson.D{
		{Key: "_id", Value: claimID(key, rev, gen)},
		{Key: "k", Value: key}, {Key: "r", Value: string(rev)}, {Key: "at", Value: at},
	}); err != nil {
		t.Fatal(err)
	}
}

// TestClaimClockSkew: a claim just made by a writer whose clock is 20 s
// slow (its "at" looks older than ClaimTTL to everyone else) is a live
// claim, and must block the revision like any other: claims must not
// compare one machine's clock with another's.
func TestClaimClockSkew(t *testing.T) {
	ctx := context.Background()
	f := newClaimFixture(t)
	rev, err := f.a.Put(ctx, "p", []byte(`{"n":1}`), driver.IfAbsent())
	if err != nil {
		t.Fatal(err)
	}
	f.plant(t, "p", rev, 0, f.clock.now().Add(-20*time.Second))
	if _, err := f.a.Put(ctx, "p", []byte(`{"n":2}`), driver.IfMatch(rev)); !errors.Is(err, driver.ErrConflict) {
		t.Fatalf("Put on a revision a slow-clocked writer claimed just now: %v, want ErrConflict", err)
	}
	// A fast clock the other way round: its claim looks fresh for a
	// long time, yet once its writer is gone the revision frees up after
	// ClaimTTL of this adapter's own time.
	rev2, err := f.a.Put(ctx, "q", []byte(`{"n":1}`), driver.IfAbsent())
	if err != nil {
		t.Fatal(err)
	}
	f.plant(t, "q", rev2, 0, f.clock.now().Add(time.Hour))
	if _, err := f.a.Put(ctx, "q", []byte(`{"n":2}`), driver.IfMatch(rev2)); !errors.Is(err, driver.ErrConflict) {
		t.Fatalf("Put on a freshly claimed revision: %v, want ErrConflict", err)
	}
	f.clock.advance(mongo.ClaimTTL + time.Second)
	if _, err := f.a.Put(ctx, "q", []byte(`{"n":2}`), driver.IfMatch(rev2)); err != nil {
		t.Fatalf("Put once the claim has been seen for ClaimTTL: %v", err)
	}
}

// TestAbandonedClaimsNeverBlock: any number of writers that died between
// claim and write delay a revision, but never block it for good.
func TestAbandonedClaimsNeverBlock(t *testing.T) {
	ctx := context.Background()
	f := newClaimFixture(t)
	rev, err := f.a.Put(ctx, "p", []byte(`{"n":1}`), driver.IfAbsent())
	if err != nil {
		t.Fatal(err)
	}
	const dead = 12
	for gen := range dead {
		f.plant(t, "p", rev, gen, f.clock.now().Add(-time.Hour))
	}
	var next driver.Revision
	for round := 0; ; round++ {
		next, err = f.a.Put(ctx, "p", []byte(`{"n":2}`), driver.IfMatch(rev))
		if err == nil {
			break
		}
		if !errors.Is(err, driver.ErrConflict) {
			t.Fatal(err)
		}
		if round == 3 {
			t.Fatalf("%d abandoned claims still block the revision after %v of waiting", dead, time.Duration(round)*(mongo.ClaimTTL+time.Second))
		}
		f.clock.advance(mongo.ClaimTTL + time.Second)
	}
	if _, err := f.a.Put(ctx, "p", []byte(`{"n":3}`), driver.IfMatch(next)); err != nil {
		t.Fatalf("Put on the revision after: %v", err)
	}
}
