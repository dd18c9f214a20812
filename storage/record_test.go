package storage_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/memory"
)

func TestRecordRoundTripKeepsUnknownMembers(t *testing.T) {
	in := `{"profile":"p","client_id":"c","client_secret":"s","refresh_token":"r","access_token":"a","other_tool":{"x":[1,2]},"zz":"kept"}`
	r, err := storage.DecodeRecord([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if r.ClientSecret.Reveal() != "s" || r.RefreshToken.Reveal() != "r" || r.AccessToken.Reveal() != "a" || r.ClientID != "c" {
		t.Fatalf("decoded %+v", r)
	}
	r.AccessToken = "a2"
	out, err := storage.EncodeRecord(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"other_tool":{"x":[1,2]}`, `"zz":"kept"`, `"access_token":"a2"`, `"client_secret":"s"`, `"schema_version":1`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("encoded %s lacks %s", out, want)
		}
	}
	back, err := storage.DecodeRecord(out)
	if err != nil || back.AccessToken != "a2" || len(back.Extra) != 2 {
		t.Fatalf("second decode: %+v, %v", back, err)
	}
}

func TestDecodeRecordErrorsAreCorrupt(t *testing.T) {
	for _, in := range []string{``, `[]`, `{"profile":1}`, `{"profile":"p"} trailing`, `{"schema_version":99}`, `{"expiry":"yesterday"}`} {
		_, err := storage.DecodeRecord([]byte(in))
		if !errors.Is(err, storage.ErrCorrupt) {
			t.Errorf("DecodeRecord(%q) = %v, want ErrCorrupt", in, err)
		}
	}
}

func TestUpdateRetriesOnConflict(t *testing.T) {
	ctx := context.Background()
	st := storage.NewStore(memory.New(nil))
	const n = 50
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_, _, err := st.Update(ctx, "p", func(r *storage.Record) error {
				r.ClientID += "x"
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	r, _, err := st.Load(ctx, "p")
	if err != nil || len(r.ClientID) != n {
		t.Fatalf("after %d concurrent updates ClientID has %d x (%v)", n, len(r.ClientID), err)
	}
	abort := errors.New("stop")
	if _, _, err := st.Update(ctx, "p", func(*storage.Record) error { return abort }); err != abort {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
}

func TestStoreRejectsBadProfiles(t *testing.T) {
	st := storage.NewStore(memory.New(nil))
	for _, p := range []string{"", "a\nb", strings.Repeat("x", 201), "\xff"} {
		if _, _, err := st.Load(context.Background(), p); !errors.Is(err, storage.ErrInvalid) {
			t.Errorf("Load(%q) = %v, want ErrInvalid", p, err)
		}
	}
}

func TestOpenUnknownSchemeIsInvalid(t *testing.T) {
	_, err := storage.Open(context.Background(), "nosuch://u:topsecret@h")
	if !errors.Is(err, storage.ErrInvalid) || strings.Contains(err.Error(), "topsecret") {
		t.Fatalf("Open of an unknown scheme: %v", err)
	}
}
