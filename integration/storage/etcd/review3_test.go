package etcd_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/etcd"
)

// review3: of two Puts conditioned on one revision exactly one may succeed
// (driver.Adapter). When ours is lost before it reaches etcd and another
// writer stores the very same bytes meanwhile, the read-back takes the
// other writer's write for ours: both callers are told they won, and ours
// never applied (etcd's own history shows one write).
func TestReview3IdenticalBytesBothWin(t *testing.T) {
	ctx := context.Background()
	prefix := uniquePrefix()
	plain := plainClient(t)
	a, f := faultyAdapter(t, prefix)
	other := must(etcd.New(plain, &etcd.Options{Prefix: prefix}))

	r0, err := a.Put(ctx, "p", []byte(`{"n":0}`), driver.IfAbsent())
	if err != nil {
		t.Fatal(err)
	}
	value := []byte(`{"lease":"same"}`)
	var otherErr error
	f.plan = []string{"dropped"}
	f.before = func() { _, otherErr = other.Put(ctx, "p", value, driver.IfMatch(r0)) }
	_, ourErr := a.Put(ctx, "p", value, driver.IfMatch(r0))
	if otherErr == nil && ourErr == nil {
		t.Fatalf("both Puts conditioned on %s succeeded; etcd applied %d write(s) after the create",
			r0, version(t, plain, prefix+"p")-1)
	}
}

// review3: ErrConflict must mean "nothing changed". A Put whose answer is
// lost did apply; when another writer then builds on it (conditioned on
// the revision our write made) before the read-back, the read-back sees
// neither our bytes nor the condition's revision and reports ErrConflict,
// though our write is in the key's history and the other writer's
// success depended on it.
func TestReview3LostAnswerOverwrittenIsConflict(t *testing.T) {
	ctx := context.Background()
	prefix := uniquePrefix()
	plain := plainClient(t)
	other := must(etcd.New(plain, &etcd.Options{Prefix: prefix}))
	var armed bool
	var otherErr error
	intercept := func(ictx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if !strings.HasSuffix(method, "/Txn") || !armed {
			return invoker(ictx, method, req, reply, cc, opts...)
		}
		armed = false
		if err := invoker(ictx, method, req, reply, cc, opts...); err != nil {
			return err
		}
		resp := reply.(*pb.TxnResponse)
		if resp.Succeeded {
			// The answer is lost; another writer reads our write and
			// builds on it before we read back.
			ours := driver.Revision(strconv.FormatInt(resp.Header.Revision, 10))
			_, otherErr = other.Put(ctx, "p", []byte(`{"n":"theirs"}`), driver.IfMatch(ours))
		}
		return status.Error(codes.Unavailable, "injected: connection lost before the answer")
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: cluster.Get(t).Endpoints, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(intercept)}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a := must(etcd.New(c, &etcd.Options{Prefix: prefix}))
	r0, err := a.Put(ctx, "p", []byte(`{"n":0}`), driver.IfAbsent())
	if err != nil {
		t.Fatal(err)
	}
	armed = true
	_, err = a.Put(ctx, "p", []byte(`{"n":"ours"}`), driver.IfMatch(r0))
	if otherErr != nil {
		t.Fatalf("the other writer, conditioned on our write's revision: %v", otherErr)
	}
	if errors.Is(err, driver.ErrConflict) {
		t.Fatalf("Put reported ErrConflict (nothing changed), but it applied: the other writer's Put conditioned on its revision succeeded; key version %d",
			version(t, plain, prefix+"p"))
	}
}

// review3: the same for Delete: of two Deletes conditioned on one
// revision, ours is lost before it reaches etcd and the other applies;
// the read-back finds the key gone and reports success for ours too.
func TestReview3ConditionalDeleteBothWin(t *testing.T) {
	ctx := context.Background()
	prefix := uniquePrefix()
	plain := plainClient(t)
	a, f := faultyAdapter(t, prefix)
	other := must(etcd.New(plain, &etcd.Options{Prefix: prefix}))
	r0, err := a.Put(ctx, "p", []byte(`{"n":0}`), driver.IfAbsent())
	if err != nil {
		t.Fatal(err)
	}
	var otherErr error
	f.plan = []string{"dropped"}
	f.before = func() { otherErr = other.Delete(ctx, "p", driver.IfMatch(r0)) }
	ourErr := a.Delete(ctx, "p", driver.IfMatch(r0))
	if otherErr == nil && ourErr == nil {
		t.Fatalf("both Deletes conditioned on %s succeeded; only the other one was ever sent", r0)
	}
}
