package storage_test

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tokencache/tokencache/storage"
)

// FuzzDecodeRecord: DecodeRecord never panics, every error it returns
// matches ErrCorrupt, and a record it decodes survives a round trip through
// EncodeRecord and DecodeRecord unchanged (and encodes to the same bytes
// the second time), so a read-modify-write never alters what it did not mean
// to change.
func FuzzDecodeRecord(f *testing.F) {
	for _, s := range []string{
		`{}`,
		`{"profile":"p"}`,
		`{"access_token":"at","client_id":"cid","client_secret":"cs","profile":"default","refresh_token":"rt"}`,
		`{"schema_version":1,"profile":"p","token_type":"Bearer","expiry":"2030-01-02T03:04:05.123456789+01:00","token_url":"https://x/token","flavor":"pancloud","scopes":["a","b"],"scheme":"hmac","lease":{"owner":"o","until":"2030-01-01T00:00:00Z"},"updated_at":"2030-01-01T00:00:00.001Z"}`,
		`{"profile":"p","x_custom":{"keep":[1,2.50,"three"]},"tenant":"t"}`,
		`{"profile":"p","scopes":[],"lease":null,"other":null}`,
		`{"schema_version":2}`,
		`{"profile":"p"} trailing`,
		`{"Profile":"p","ACCESS_TOKEN":"x","zz":1}`,
		`{"profile":"\ud800\u00fc"}`,
		`[]`,
		`{"expiry":"not a time"}`,
		``,
		// Found by fuzzing: an unknown member inside "lease" sends decoding
		// down the unknown-members path, which finds no top-level extra
		// and leaves Extra empty but not nil (the nested member is dropped).
		`{"lease":{"":""}}`,
		// Found by fuzzing: see TestDecodeRecordCaseVariants.
		`{"eXpirY":"2020-01-01T00:00:00Z","x":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := storage.DecodeRecord(b)
		if err != nil {
			if !errors.Is(err, storage.ErrCorrupt) {
				t.Fatalf("DecodeRecord error %v does not match ErrCorrupt", err)
			}
			return
		}
		if k := caseVariantOfKnown(r); k != "" {
			t.Fatalf("extra member %q is a case variant of a known one: see TestDecodeRecordCaseVariants", k)
		}
		enc, err := storage.EncodeRecord(r)
		if err != nil {
			t.Fatalf("EncodeRecord of a decoded record: %v", err)
		}
		r2, err := storage.DecodeRecord(enc)
		if err != nil {
			t.Fatalf("DecodeRecord of %s: %v", enc, err)
		}
		if !sameRecord(r, r2) {
			t.Fatalf("round trip changed the record:\n%#v\n%#v\nvia %s", r, r2, enc)
		}
		enc2, err := storage.EncodeRecord(r2)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable: %s then %s (%v)", enc, enc2, err)
		}
	})
}

// sameRecord compares records, taking times as instants (a decoded zone is
// a new *time.Location each time) and an empty Scopes or Extra as none
// (the encoding cannot tell them apart, nor does anyone need it to).
func sameRecord(a, b *storage.Record) bool {
	a, b = a.Clone(), b.Clone()
	for _, r := range []*storage.Record{a, b} {
		if len(r.Scopes) == 0 {
			r.Scopes = nil
		}
		if len(r.Extra) == 0 {
			r.Extra = nil
		}
	}
	times := [][2]*time.Time{{&a.Expiry, &b.Expiry}, {&a.UpdatedAt, &b.UpdatedAt}}
	if a.Lease != nil && b.Lease != nil {
		times = append(times, [2]*time.Time{&a.Lease.Until, &b.Lease.Until})
	}
	for _, p := range times {
		if !p[0].Equal(*p[1]) || p[0].Format(time.RFC3339Nano) != p[1].Format(time.RFC3339Nano) {
			return false
		}
		*p[0], *p[1] = time.Time{}, time.Time{}
	}
	return reflect.DeepEqual(a, b)
}

var knownMembers = []string{
	"schema_version", "profile", "client_id", "client_secret", "refresh_token",
	"access_token", "token_type", "expiry", "token_url", "flavor", "scopes",
	"scheme", "lease", "updated_at",
}

func caseVariantOfKnown(r *storage.Record) string {
	for k := range r.Extra {
		for _, m := range knownMembers {
			if k != m && strings.EqualFold(k, m) {
				return k
			}
		}
	}
	return ""
}

// TestDecodeRecordCaseVariants is a case FuzzDecodeRecord found:
// encoding/json matches member names case-insensitively, so "eXpirY" sets
// Expiry. Were it also kept in Extra, EncodeRecord would write the updated
// "expiry" followed by the stale "eXpirY", the next decode would take the
// later one, and the update would be lost.
func TestDecodeRecordCaseVariants(t *testing.T) {
	r, err := storage.DecodeRecord([]byte(`{"profile":"p","eXpirY":"2020-01-01T00:00:00Z","x":1}`))
	if err != nil {
		t.Fatal(err)
	}
	r.Expiry = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	enc, err := storage.EncodeRecord(r)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := storage.DecodeRecord(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !r2.Expiry.Equal(r.Expiry) {
		t.Fatalf("an updated Expiry reads back as %v via %s", r2.Expiry, enc)
	}
}
