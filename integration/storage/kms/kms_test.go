package kms_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/tokencache/tokencache/integration/servers"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver/drivertest"
	"github.com/tokencache/tokencache/storage/kms"
	"github.com/tokencache/tokencache/storage/memory"

	"github.com/tokencache/tokencache/storage/driver"
	_ "github.com/tokencache/tokencache/storage/file"
)

// One local-kms for the package, started by the first test that needs it;
// a missing server fails the test (see package servers).
var localKMS = servers.SharedLocalKMS()

func TestMain(m *testing.M) {
	// local-kms checks no signatures, but the SDK wants credentials; the
	// URL form takes them from the environment, as in production.
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
		"AWS_EC2_METADATA_DISABLED": "true",
	} {
		if os.Getenv(k) == "" {
			os.Setenv(k, v)
		}
	}
	code := m.Run()
	localKMS.Terminate()
	os.Exit(code)
}

func endpoint(t testing.TB) string { return localKMS.Get(t).URL }

func client(t testing.TB) *awskms.Client {
	return awskms.New(awskms.Options{
		Region:       servers.LocalKMSRegion,
		BaseEndpoint: aws.String(endpoint(t)),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
}

// newKey creates a KMS key and returns its ARN.
func newKey(t testing.TB, c *awskms.Client) string {
	t.Helper()
	out, err := c.CreateKey(context.Background(), &awskms.CreateKeyInput{Description: aws.String(t.Name())})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.KeyMetadata.Arn)
}

func TestConformanceMemory(t *testing.T) {
	c := client(t)
	key := newKey(t, c)
	name := fmt.Sprintf("kms-%d", time.Now().UnixNano())
	drivertest.Run(t, func(t *testing.T) driver.Adapter {
		return must(kms.New(memory.New(&memory.Options{Name: name}), c, key, nil))
	})
}

// TestConformanceFileURL wraps the file store (which requires JSON objects
// with a "profile" member) through the URL form.
func TestConformanceFileURL(t *testing.T) {
	key := newKey(t, client(t))
	path := filepath.Join(t.TempDir(), "credentials.json")
	raw := fileURL(t, path, key)
	drivertest.Run(t, func(t *testing.T) driver.Adapter {
		a, err := driver.Open(context.Background(), raw)
		if err != nil {
			t.Fatal(err)
		}
		return a
	})
}

func fileURL(t testing.TB, path, key string) string {
	q := url.Values{"kms_key_id": {key}, "kms_endpoint": {endpoint(t)}, "kms_region": {servers.LocalKMSRegion}}
	return "kms+file://" + path + "?" + q.Encode()
}

func TestFileHoldsOnlyCiphertext(t *testing.T) {
	ctx := context.Background()
	key := newKey(t, client(t))
	path := filepath.Join(t.TempDir(), "credentials.json")
	st, err := storage.Open(ctx, fileURL(t, path, key))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, _, err := st.Update(ctx, "p", func(r *storage.Record) error {
		*r = *drivertest.SampleRecord("p")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"s3cr3t", "rt-0123", "eyJhbGci", "client-0123"} {
		if bytes.Contains(b, []byte(s)) {
			t.Fatalf("the file holds %q in the clear", s)
		}
	}
	r, _, err := st.Load(ctx, "p")
	if err != nil || r.RefreshToken.Reveal() != drivertest.SampleRecord("p").RefreshToken.Reveal() {
		t.Fatalf("Load = %v, %v", r, err)
	}
}

func TestMovedToAnotherProfile(t *testing.T) {
	ctx := context.Background()
	c := client(t)
	key := newKey(t, c)
	mem := memory.New(nil)
	a := must(kms.New(mem, c, key, nil))
	if _, err := a.Put(ctx, "alice", []byte(`{"profile":"alice","n":1}`), driver.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	v, _, err := mem.Get(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mem.Put(ctx, "mallory", v, driver.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	// Both with the data key cached (GCM's associated data refuses it) and
	// without (KMS refuses the encryption context).
	cold := must(kms.New(mem, c, key, nil))
	for name, x := range map[string]*kms.Adapter{"cached": a, "cold": cold} {
		_, _, err := x.Get(ctx, "mallory")
		if !errors.Is(err, kms.ErrDecrypt) || !errors.Is(err, driver.ErrCorrupt) {
			t.Errorf("%s: Get of a value moved to another profile: %v, want ErrDecrypt and ErrCorrupt", name, err)
		}
	}
}

func TestTampered(t *testing.T) {
	ctx := context.Background()
	c := client(t)
	key := newKey(t, c)
	mem := memory.New(nil)
	a := must(kms.New(mem, c, key, nil))
	if _, err := a.Put(ctx, "p", []byte(`{"profile":"p","n":1}`), driver.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	orig, _, _ := mem.Get(ctx, "p")
	for _, field := range []string{"ct", "nonce", "edk"} {
		t.Run(field, func(t *testing.T) {
			var env struct {
				Profile string                     `json:"profile"`
				KMS     map[string]json.RawMessage `json:"tokencache_kms"`
			}
			if err := json.Unmarshal(orig, &env); err != nil {
				t.Fatal(err)
			}
			var b []byte // base64 in JSON
			if err := json.Unmarshal(env.KMS[field], &b); err != nil {
				t.Fatal(err)
			}
			// The last byte: local-kms's encrypted key starts with the key
			// ARN, which it ignores when Decrypt names the key.
			b[len(b)-1] ^= 1
			env.KMS[field], _ = json.Marshal(b)
			tampered, _ := json.Marshal(env)
			if _, err := mem.Put(ctx, "p", tampered, driver.Condition{}); err != nil {
				t.Fatal(err)
			}
			_, _, err := must(kms.New(mem, c, key, nil)).Get(ctx, "p")
			if !errors.Is(err, kms.ErrDecrypt) {
				t.Fatalf("Get of a tampered %s: %v, want ErrDecrypt", field, err)
			}
		})
	}
}

func TestKeyRotation(t *testing.T) {
	ctx := context.Background()
	c := client(t)
	oldKey, newKeyID := newKey(t, c), newKey(t, c)
	mem := memory.New(nil)
	if _, err := must(kms.New(mem, c, oldKey, nil)).Put(ctx, "p", []byte(`{"profile":"p","n":1}`), driver.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	// Not without saying so: the old key is another key.
	if _, _, err := must(kms.New(mem, c, newKeyID, nil)).Get(ctx, "p"); !errors.Is(err, kms.ErrDecrypt) {
		t.Fatalf("reading a value sealed under a key not allowed: %v, want ErrDecrypt", err)
	}
	rotated := must(kms.New(mem, c, newKeyID, &kms.Options{AllowedKeyIDs: []string{oldKey}}))
	v, rev, err := rotated.Get(ctx, "p")
	if err != nil {
		t.Fatalf("reading a value sealed under the old key: %v", err)
	}
	if string(v) != `{"profile":"p","n":1}` {
		t.Fatalf("Get = %s", v)
	}
	if _, err := rotated.Put(ctx, "p", []byte(`{"profile":"p","n":2}`), driver.IfMatch(rev)); err != nil {
		t.Fatal(err)
	}
	raw, _, _ := mem.Get(ctx, "p")
	var env struct {
		KMS struct {
			KeyID string `json:"key_id"`
		} `json:"tokencache_kms"`
	}
	if err := json.Unmarshal(raw, &env); err != nil || env.KMS.KeyID != newKeyID {
		t.Fatalf("after a write the envelope names key %q (%v), want the new key %q", env.KMS.KeyID, err, newKeyID)
	}
}

func TestKMSUnreachable(t *testing.T) {
	ctx := context.Background()
	u := "kms+memory://unreachable?kms_key_id=alias/x&kms_region=eu-west-2&kms_endpoint=http://127.0.0.1:1"
	a, err := driver.Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	_, err = a.Put(ctx, "p", []byte(`{}`), driver.IfAbsent())
	if !errors.Is(err, driver.ErrUnavailable) {
		t.Fatalf("Put with KMS unreachable: %v, want ErrUnavailable", err)
	}
}

func BenchmarkStore(b *testing.B) {
	c := client(b)
	key := newKey(b, c)
	drivertest.Benchmark(b, func(b *testing.B) driver.Adapter { return must(kms.New(memory.New(nil), c, key, nil)) })
}

// BenchmarkBaseline is the inner adapter alone, to compare with
// BenchmarkStore.
func BenchmarkBaseline(b *testing.B) {
	drivertest.Benchmark(b, func(b *testing.B) driver.Adapter { return memory.New(nil) })
}
