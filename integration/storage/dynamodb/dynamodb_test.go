package dynamodb_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsdynamodb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tokencache/tokencache/integration/servers"
	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/driver/drivertest"
	"github.com/tokencache/tokencache/storage/dynamodb"
)

func openURL(t testing.TB, u string) driver.Adapter {
	t.Helper()
	a, err := driver.Open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestConformance opens every connection from the URL, so each adapter has
// its own SDK client, as separate processes would.
func TestConformance(t *testing.T) {
	u := tableURL(t, unique("conformance"))
	drivertest.Run(t, func(t *testing.T) driver.Adapter { return openURL(t, u) })
}

// TestConformancePrefixes: two stores in one table, under different
// prefixes, each pass the suite and never see each other's profiles.
func TestConformancePrefixes(t *testing.T) {
	table := unique("shared")
	u1, u2 := tableURL(t, table, "prefix", "one"), tableURL(t, table, "prefix", "two")
	drivertest.Run(t, func(t *testing.T) driver.Adapter { return openURL(t, u1) })
	drivertest.Run(t, func(t *testing.T) driver.Adapter { return openURL(t, u2) })
	ctx := context.Background()
	a1, a2 := openURL(t, u1), openURL(t, u2)
	defer a1.Close()
	defer a2.Close()
	if _, err := a1.Put(ctx, "only-in-one", []byte(`{}`), driver.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	keys, err := a2.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(keys, "only-in-one") {
		t.Fatal("prefix two lists a profile of prefix one")
	}
	if _, _, err := a2.Get(ctx, "only-in-one"); !errors.Is(err, driver.ErrNotFound) {
		t.Fatalf("Get across prefixes: %v, want ErrNotFound", err)
	}
}

// TestProcesses: exactly one winner per revision across OS processes.
func TestProcesses(t *testing.T) {
	if os.Getenv("TOKENCACHE_STORAGETEST_CHILD") != "" {
		drivertest.RunProcesses(t, "", 0, 0) // the child's share; the URL comes with it
		return
	}
	drivertest.RunProcesses(t, tableURL(t, unique("processes")), 4, 50)
}

// TestListPages: List follows Query's pages. dynalite, like DynamoDB,
// cuts a page at 1 MB of items, so 30 items of 60 KB make two pages.
func TestListPages(t *testing.T) {
	table := unique("pages")
	a := openURL(t, tableURL(t, table))
	defer a.Close()
	ctx := context.Background()
	pad := strings.Repeat("x", 60<<10) // under the compression threshold
	var want []string
	for i := range 30 {
		k := "p" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		want = append(want, k)
		if _, err := a.Put(ctx, k, []byte(`{"pad":"`+pad+`"}`), driver.IfAbsent()); err != nil {
			t.Fatal(err)
		}
	}
	first, err := plainClient(t).Query(ctx, &awsdynamodb.QueryInput{
		TableName:                 aws.String(table),
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: dynamodb.DefaultPrefix}},
	})
	if err != nil || first.LastEvaluatedKey == nil {
		t.Fatalf("the first page holds all %d items (err %v): the test proves nothing", first.Count, err)
	}
	got, err := a.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("List = %d keys %q, want %d", len(got), got, len(want))
	}
}

// TestTooLarge: a value that does not fit an item even compressed is
// refused as invalid, and what was stored stays.
func TestTooLarge(t *testing.T) {
	a := openURL(t, tableURL(t, unique("large")))
	defer a.Close()
	ctx := context.Background()
	rev, err := a.Put(ctx, "p", []byte(`{"n":1}`), driver.IfAbsent())
	if err != nil {
		t.Fatal(err)
	}
	noise := make([]byte, 300<<10)
	rand.Read(noise)
	big := []byte(`{"pad":"` + url.QueryEscape(string(noise)) + `"}`) // incompressible enough
	if _, err := a.Put(ctx, "p", big, driver.IfMatch(rev)); !errors.Is(err, driver.ErrInvalid) {
		t.Fatalf("Put of %d incompressible bytes: %v, want ErrInvalid", len(big), err)
	}
	v, cur, err := a.Get(ctx, "p")
	if err != nil || cur != rev || string(v) != `{"n":1}` {
		t.Fatalf("after a refused Put: %q %q %v", v, cur, err)
	}
}

// TestLayout: items are where the package documentation says, values as
// written, and a compressed value reads back whole.
func TestLayout(t *testing.T) {
	table := unique("layout")
	a := openURL(t, tableURL(t, table, "prefix", "tc"))
	defer a.Close()
	ctx := context.Background()
	val := []byte(`{"b": 1,  "a": 2}`)
	rev, err := a.Put(ctx, "p", val, driver.IfAbsent())
	if err != nil {
		t.Fatal(err)
	}
	c := plainClient(t)
	out, err := c.GetItem(ctx, &awsdynamodb.GetItemInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "tc"}, "sk": &types.AttributeValueMemberS{Value: "p"}}})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := out.Item["v"].(*types.AttributeValueMemberB)
	r, _ := out.Item["r"].(*types.AttributeValueMemberS)
	if v == nil || r == nil || !bytes.Equal(v.Value, val) || r.Value != string(rev) {
		t.Fatalf("item = %v", out.Item)
	}
	large := []byte(`{"pad":"` + strings.Repeat("abc", 100<<10) + `"}`)
	if _, err := a.Put(ctx, "big", large, driver.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	got, _, err := a.Get(ctx, "big")
	if err != nil || !bytes.Equal(got, large) {
		t.Fatalf("compressed value read back %d bytes, %v; want %d", len(got), err, len(large))
	}
}

// TestConcurrentCreateTable: stores that open with create_table=true at
// once all end up with the one table.
func TestConcurrentCreateTable(t *testing.T) {
	u := tableURL(t, unique("create"))
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			a, err := driver.Open(context.Background(), u)
			if err != nil {
				errs[i] = err
				return
			}
			defer a.Close()
			_, errs[i] = a.List(context.Background())
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

func TestMissingTable(t *testing.T) {
	u := strings.Replace(tableURL(t, unique("missing")), "create_table=true", "create_table=false", 1)
	a := openURL(t, u)
	defer a.Close()
	_, _, err := a.Get(context.Background(), "p")
	if !errors.Is(err, driver.ErrUnavailable) || !strings.Contains(err.Error(), "create_table") {
		t.Fatalf("Get from a missing table: %v, want ErrUnavailable that says how to create it", err)
	}
}

func TestUnavailable(t *testing.T) {
	u := "dynamodb://tokens?region=us-east-1&endpoint=http://127.0.0.1:1"
	a := openURL(t, u)
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := a.Put(ctx, "p", []byte(`{}`), driver.IfAbsent()); !errors.Is(err, driver.ErrUnavailable) {
		t.Fatalf("Put: %v, want ErrUnavailable", err)
	}
	if _, err := a.List(ctx); !errors.Is(err, driver.ErrUnavailable) {
		t.Fatalf("List: %v, want ErrUnavailable", err)
	}
	short, cancel2 := context.WithTimeout(ctx, time.Millisecond)
	defer cancel2()
	time.Sleep(2 * time.Millisecond)
	if _, _, err := a.Get(short, "p"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get after the deadline: %v, want DeadlineExceeded", err)
	}
}

// TestNoABA: a profile deleted and created again never repeats a revision,
// so a writer holding the old one loses.
func TestNoABA(t *testing.T) {
	a := openURL(t, tableURL(t, unique("aba")))
	defer a.Close()
	ctx := context.Background()
	old, err := a.Put(ctx, "p", []byte(`{"n":1}`), driver.IfAbsent())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Delete(ctx, "p", driver.Condition{}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Put(ctx, "p", []byte(`{"n":1}`), driver.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Put(ctx, "p", []byte(`{"n":2}`), driver.IfMatch(old)); !errors.Is(err, driver.ErrConflict) {
		t.Fatalf("Put on a revision from before the delete: %v, want ErrConflict", err)
	}
}

// TestNoWatcher: DynamoDB has nothing to wait on; the Store polls.
func TestNoWatcher(t *testing.T) {
	a := openURL(t, tableURL(t, unique("watch")))
	defer a.Close()
	if _, ok := a.(driver.Watcher); ok {
		t.Fatal("the adapter claims to be a Watcher")
	}
}

// TestCloseReleasesConnections: an adapter made from a URL owns its HTTP
// transport (the SDK's, so AWS_CA_BUNDLE still applies) and Close frees
// its idle connections, which the server then sees closed.
func TestCloseReleasesConnections(t *testing.T) {
	table := unique("close")
	openURL(t, tableURL(t, table)).Close() // makes the table
	target, err := url.Parse(endpoint(t))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// Forwards to the server, and reports each client connection's end.
	ended := make(chan struct{}, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target.Host)
			if err != nil {
				c.Close()
				continue
			}
			go func() { io.Copy(c, s); c.Close() }()
			// The client's side ends: it closed the connection.
			go func() { io.Copy(s, c); s.Close(); ended <- struct{}{} }()
		}
	}()
	q := url.Values{"region": {servers.DynamoDBRegion}, "endpoint": {"http://" + ln.Addr().String()}}
	a := openURL(t, "dynamodb://"+table+"?"+q.Encode())
	if _, err := a.List(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ended:
		t.Fatal("the connection ended before Close: nothing left to release")
	case <-time.After(100 * time.Millisecond):
	}
	a.Close()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the idle connection is still open 5 s after Close")
	}
}
