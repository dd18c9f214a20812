package kms_test

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/tokencache/tokencache/integration/servers"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/driver/drivertest"
	"github.com/tokencache/tokencache/storage/kms"
	"github.com/tokencache/tokencache/storage/memory"
)

// TestOtherKeyRefused: someone who can write the store, and can use
// another KMS key that this process may also use, seals a record under
// that key and plants it. The adapter must refuse it as corrupt, whether
// or not it ever read the profile before, and the Store must not
// overwrite it.
func TestOtherKeyRefused(t *testing.T) {
	ctx := context.Background()
	c := client(t)
	ours, theirs := newKey(t, c), newKey(t, c)
	mem := memory.New(nil)
	// The legitimate record first, so that the warm adapter has its data
	// key cached.
	warm := must(kms.New(mem, c, ours, nil))
	if _, err := storage.NewStore(warm).Replace(ctx, nil, "", drivertest.SampleRecord("p")); err != nil {
		t.Fatal(err)
	}
	planted := drivertest.SampleRecord("p")
	planted.RefreshToken = secret.Secret("rt-planted")
	raw, err := storage.EncodeRecord(planted)
	if err != nil {
		t.Fatal(err)
	}
	// Written as the attacker would, with the adapter, past any rule of
	// the Store's.
	if _, err := must(kms.New(mem, c, theirs, nil)).Put(ctx, "p", raw, driver.Condition{}); err != nil {
		t.Fatal(err)
	}
	before, _, err := mem.Get(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	for name, a := range map[string]*kms.Adapter{"warm": warm, "cold": must(kms.New(mem, c, ours, nil))} {
		t.Run(name, func(t *testing.T) {
			_, _, err := a.Get(ctx, "p")
			if !errors.Is(err, kms.ErrDecrypt) || !errors.Is(err, driver.ErrCorrupt) {
				t.Fatalf("Get of a record sealed under another key: %v, want ErrDecrypt and ErrCorrupt", err)
			}
			if !strings.Contains(err.Error(), theirs) {
				t.Errorf("the error does not name the key: %v", err)
			}
			st := storage.NewStore(a)
			_, _, err = st.Update(ctx, "p", func(r *storage.Record) error {
				r.AccessToken = secret.Secret("at-new")
				return nil
			})
			if !errors.Is(err, driver.ErrCorrupt) {
				t.Fatalf("Update over a record sealed under another key: %v, want ErrCorrupt", err)
			}
			after, _, err := mem.Get(ctx, "p")
			if err != nil || !bytes.Equal(after, before) {
				t.Fatalf("the planted record was overwritten (%v)", err)
			}
		})
	}
}

// TestAllowedKeys: another key's values read once it is allowed, by
// option or URL, given as an ARN, a bare key id or an alias; the adapter
// configured by alias reads its own values and still refuses others.
func TestAllowedKeys(t *testing.T) {
	ctx := context.Background()
	c := client(t)
	ours, theirs, third := newKey(t, c), newKey(t, c), newKey(t, c)
	alias := func(arn string) string {
		name := "alias/tc-" + arn[strings.LastIndex(arn, "/")+1:]
		if _, err := c.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: aws.String(name), TargetKeyId: aws.String(arn)}); err != nil {
			t.Fatal(err)
		}
		return name
	}
	oursAlias, theirsAlias := alias(ours), alias(theirs)
	bareID := func(arn string) string { return arn[strings.LastIndex(arn, "/")+1:] }

	mem := memory.New(nil)
	seal := func(profile, key string) {
		t.Helper()
		if _, err := must(kms.New(mem, c, key, nil)).Put(ctx, profile, []byte(`{"profile":"`+profile+`"}`), driver.Condition{}); err != nil {
			t.Fatal(err)
		}
	}
	seal("ours", ours)
	seal("theirs", theirs)
	seal("third", third)

	for _, tc := range []struct {
		name     string
		a        *kms.Adapter
		readable map[string]bool
	}{
		{"arn", must(kms.New(mem, c, ours, nil)), map[string]bool{"ours": true}},
		{"bare id", must(kms.New(mem, c, bareID(ours), nil)), map[string]bool{"ours": true}},
		{"alias", must(kms.New(mem, c, oursAlias, nil)), map[string]bool{"ours": true}},
		{"allow arn", must(kms.New(mem, c, ours, &kms.Options{AllowedKeyIDs: []string{theirs}})), map[string]bool{"ours": true, "theirs": true}},
		{"allow bare id", must(kms.New(mem, c, oursAlias, &kms.Options{AllowedKeyIDs: []string{bareID(theirs)}})), map[string]bool{"ours": true, "theirs": true}},
		{"allow alias", must(kms.New(mem, c, ours, &kms.Options{AllowedKeyIDs: []string{theirsAlias}})), map[string]bool{"ours": true, "theirs": true}},
		{"url", urlAdapter(t, mem, oursAlias, theirs+", "+theirsAlias), map[string]bool{"ours": true, "theirs": true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, p := range []string{"ours", "theirs", "third"} {
				v, _, err := tc.a.Get(ctx, p)
				switch {
				case tc.readable[p] && (err != nil || string(v) != `{"profile":"`+p+`"}`):
					t.Errorf("Get(%s) = %s, %v; want it read", p, v, err)
				case !tc.readable[p] && !errors.Is(err, driver.ErrCorrupt):
					t.Errorf("Get(%s): %v, want ErrCorrupt", p, err)
				}
			}
		})
	}
}

// urlAdapter opens kms+memory over mem's shared twin through the URL form
// with kms_allowed_key_ids.
func urlAdapter(t *testing.T, mem *memory.Adapter, key, allowed string) *kms.Adapter {
	t.Helper()
	name := "pin-" + strings.ReplaceAll(t.Name(), "/", "-")
	q := url.Values{"kms_key_id": {key}, "kms_endpoint": {endpoint(t)}, "kms_region": {servers.LocalKMSRegion}, "kms_allowed_key_ids": {allowed}}
	a, err := driver.Open(context.Background(), "kms+memory://"+name+"?"+q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	// Copy mem's records into the URL's store.
	ctx := context.Background()
	names, err := mem.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	inner := a.(*kms.Adapter).Inner()
	for _, n := range names {
		v, _, err := mem.Get(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := inner.Put(ctx, n, v, driver.Condition{}); err != nil {
			t.Fatal(err)
		}
	}
	return a.(*kms.Adapter)
}
