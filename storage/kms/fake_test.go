package kms

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"

	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/memory"
)

// fakeKMS is a stand-in for fault injection and call counting only; the
// behaviour of real KMS is tested against local-kms in kms_test.go. Its
// "encrypted" data key is the key id, the context and the key, sealed with
// a master key, so that it checks both as KMS does.
type fakeKMS struct {
	master    []byte
	generates atomic.Int64
	decrypts  atomic.Int64
	mu        sync.Mutex
	fail      error // returned by every call while set
}

func newFake() *fakeKMS {
	m := make([]byte, 32)
	rand.Read(m)
	return &fakeKMS{master: m}
}

func (f *fakeKMS) failing() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fail
}

func (f *fakeKMS) setFail(err error) {
	f.mu.Lock()
	f.fail = err
	f.mu.Unlock()
}

func (f *fakeKMS) GenerateDataKey(_ context.Context, in *awskms.GenerateDataKeyInput, _ ...func(*awskms.Options)) (*awskms.GenerateDataKeyOutput, error) {
	if err := f.failing(); err != nil {
		return nil, err
	}
	f.generates.Add(1)
	key := make([]byte, 32)
	rand.Read(key)
	aead, _ := newAEAD(f.master)
	nonce := make([]byte, 12)
	rand.Read(nonce)
	id := fakeARN(aws.ToString(in.KeyId))
	edk := append(nonce, aead.Seal(nil, nonce, key, []byte(id+fmt.Sprint(in.EncryptionContext)))...)
	return &awskms.GenerateDataKeyOutput{KeyId: aws.String(id), Plaintext: key, CiphertextBlob: edk}, nil
}

func (f *fakeKMS) Decrypt(_ context.Context, in *awskms.DecryptInput, _ ...func(*awskms.Options)) (*awskms.DecryptOutput, error) {
	if err := f.failing(); err != nil {
		return nil, err
	}
	f.decrypts.Add(1)
	aead, _ := newAEAD(f.master)
	if len(in.CiphertextBlob) < 12 {
		return nil, &smithy.GenericAPIError{Code: "InvalidCiphertextException", Fault: smithy.FaultClient}
	}
	id := fakeARN(aws.ToString(in.KeyId))
	key, err := aead.Open(nil, in.CiphertextBlob[:12], in.CiphertextBlob[12:], []byte(id+fmt.Sprint(in.EncryptionContext)))
	if err != nil {
		return nil, &smithy.GenericAPIError{Code: "InvalidCiphertextException", Fault: smithy.FaultClient}
	}
	return &awskms.DecryptOutput{Plaintext: key, KeyId: aws.String(id)}, nil
}

// fakeARN is the ARN KMS would report for key id (no aliases here).
func fakeARN(id string) string {
	if strings.HasPrefix(id, "arn:") {
		return id
	}
	return "arn:aws:kms:eu-west-2:111122223333:key/" + id
}

func TestCachingSavesKMSCalls(t *testing.T) {
	ctx := context.Background()
	f := newFake()
	mem := memory.New(nil)
	a := mustNew(t, mem, f, "k", nil)
	for i := range 10 {
		if _, err := a.Put(ctx, "p", fmt.Appendf(nil, `{"n":%d}`, i), driver.Condition{}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := a.Get(ctx, "p"); err != nil {
			t.Fatal(err)
		}
	}
	if g, d := f.generates.Load(), f.decrypts.Load(); g != 1 || d != 0 {
		t.Fatalf("10 writes and reads in one process: %d GenerateDataKey, %d Decrypt; want 1, 0", g, d)
	}
	// Another process (another adapter) decrypts the data key once.
	b := mustNew(t, memory.New(nil), f, "k", nil)
	b.inner = mem
	for range 5 {
		if _, _, err := b.Get(ctx, "p"); err != nil {
			t.Fatal(err)
		}
	}
	if d := f.decrypts.Load(); d != 1 {
		t.Fatalf("5 reads by a second adapter: %d Decrypt, want 1", d)
	}
	// A data key is per profile: the KMS encryption context names it.
	if _, err := a.Put(ctx, "q", []byte(`{}`), driver.Condition{}); err != nil {
		t.Fatal(err)
	}
	if g := f.generates.Load(); g != 2 {
		t.Fatalf("first write of a second profile: %d GenerateDataKey in all, want 2", g)
	}
}

func TestDataKeyBounds(t *testing.T) {
	ctx := context.Background()
	f := newFake()
	now := time.Unix(1e9, 0)
	a := mustNew(t, memory.New(nil), f, "k", &Options{DataKeyUses: 3, DataKeyTTL: time.Minute, CacheSize: 2})
	a.now = func() time.Time { return now }
	put := func(key string) {
		t.Helper()
		if _, err := a.Put(ctx, key, []byte(`{}`), driver.Condition{}); err != nil {
			t.Fatal(err)
		}
	}
	for range 7 {
		put("p")
	}
	if g := f.generates.Load(); g != 3 {
		t.Fatalf("7 writes, 3 uses per key: %d GenerateDataKey, want 3", g)
	}
	now = now.Add(2 * time.Minute)
	put("p")
	if g := f.generates.Load(); g != 4 {
		t.Fatalf("write after the TTL: %d GenerateDataKey, want 4", g)
	}
	put("q")
	put("r")
	a.mu.Lock()
	n, m := a.enc.len(), a.dec.len()
	a.mu.Unlock()
	if n > 2 || m > 2 {
		t.Fatalf("caches hold %d and %d keys, bound 2", n, m)
	}
	// No caching at all: every operation asks KMS.
	z := mustNew(t, memory.New(nil), f, "k", &Options{DataKeyTTL: -1})
	before := f.generates.Load() + f.decrypts.Load()
	for range 3 {
		if _, err := z.Put(ctx, "p", []byte(`{}`), driver.Condition{}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := z.Get(ctx, "p"); err != nil {
			t.Fatal(err)
		}
	}
	if calls := f.generates.Load() + f.decrypts.Load() - before; calls != 6 {
		t.Fatalf("uncached: %d KMS calls for 3 writes and 3 reads, want 6", calls)
	}
}

// TestFaults injects the failures a real KMS can produce.
func TestFaults(t *testing.T) {
	ctx := context.Background()
	f := newFake()
	mem := memory.New(nil)
	a := mustNew(t, mem, f, "k", nil)
	if _, err := a.Put(ctx, "p", []byte(`{"n":1}`), driver.Condition{}); err != nil {
		t.Fatal(err)
	}
	cold := func() *Adapter { b := mustNew(t, memory.New(nil), f, "k", nil); b.inner = mem; return b }

	netErr := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	for _, c := range []struct {
		name string
		err  error
		want error
	}{
		{"unreachable", fmt.Errorf("operation error KMS: Decrypt: %w", netErr), driver.ErrUnavailable},
		{"throttled", &smithy.GenericAPIError{Code: "ThrottlingException", Fault: smithy.FaultClient}, driver.ErrUnavailable},
		{"kms fault", &smithy.GenericAPIError{Code: "KMSInternalException", Fault: smithy.FaultServer}, driver.ErrUnavailable},
		{"access denied", &smithy.GenericAPIError{Code: "AccessDeniedException", Fault: smithy.FaultClient}, ErrDecrypt},
		{"key disabled", &smithy.GenericAPIError{Code: "DisabledException", Fault: smithy.FaultClient}, ErrDecrypt},
	} {
		t.Run(c.name, func(t *testing.T) {
			f.setFail(c.err)
			defer f.setFail(nil)
			_, _, err := cold().Get(ctx, "p")
			if !errors.Is(err, c.want) {
				t.Fatalf("Get: %v, want %v", err, c.want)
			}
			if c.want == ErrDecrypt && !errors.Is(err, driver.ErrCorrupt) {
				t.Fatalf("ErrDecrypt does not match driver.ErrCorrupt: %v", err)
			}
			// The cached key keeps serving the process that has it.
			if _, _, err := a.Get(ctx, "p"); err != nil {
				t.Fatalf("Get with a cached data key while KMS fails: %v", err)
			}
			_, err = cold().Put(ctx, "p", []byte(`{}`), driver.Condition{})
			if c.want == driver.ErrUnavailable && !errors.Is(err, driver.ErrUnavailable) {
				t.Fatalf("Put: %v, want ErrUnavailable", err)
			}
			if c.want == ErrDecrypt && !errors.Is(err, driver.ErrInvalid) {
				t.Fatalf("Put refused by KMS: %v, want ErrInvalid", err)
			}
		})
	}
	// A cancelled call is a cancellation, not an outage.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	f.setFail(context.Canceled)
	if _, _, err := cold().Get(cctx, "p"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get with a cancelled context: %v", err)
	}
	f.setFail(nil)
}

func TestNotAnEnvelope(t *testing.T) {
	ctx := context.Background()
	mem := memory.New(nil)
	a := mustNew(t, mem, newFake(), "k", nil)
	for _, v := range []string{`{"profile":"p","access_token":"plain"}`, `{"tokencache_kms":{"v":2}}`, `not json`} {
		if _, err := mem.Put(ctx, "p", []byte(v), driver.Condition{}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := a.Get(ctx, "p"); !errors.Is(err, ErrDecrypt) {
			t.Errorf("Get of %s: %v, want ErrDecrypt", v, err)
		}
	}
}

func TestLRU(t *testing.T) {
	c := newLRU[string, int](2)
	c.put("a", 1)
	c.put("b", 2)
	c.get("a")
	c.put("c", 3) // evicts b, the least recently used
	if _, ok := c.get("b"); ok {
		t.Fatal("b survived eviction")
	}
	if v, ok := c.get("a"); !ok || v != 1 {
		t.Fatal("a was evicted")
	}
	if c.len() != 2 {
		t.Fatalf("len %d", c.len())
	}
}

// mustNew is New for a test, which fails on its error.
func mustNew(t *testing.T, inner driver.Adapter, client API, keyID string, opts *Options) *Adapter {
	t.Helper()
	a, err := New(inner, client, keyID, opts)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
