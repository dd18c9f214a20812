package kms_test

import (
	"context"
	"errors"
	"net/url"
	"testing"

	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/kms"
	"github.com/tokencache/tokencache/storage/memory"
)

func TestOpenURL(t *testing.T) {
	ctx := context.Background()
	for _, raw := range []string{
		"kms+memory://x", // no key
		"kms+memory://x?kms_key_id=k&kms_colour=1", // unknown kms_ parameter
		"kms+nosuch://x?kms_key_id=k",              // not registered
		// Plain http off the machine: data keys in the clear.
		"kms+memory://x?kms_key_id=k&kms_endpoint=http://kms.example.com",
		"kms+memory://x?kms_key_id=k&kms_endpoint=http://10.0.0.1:4599",
		"kms+memory://x?kms_key_id=k&kms_endpoint=ftp://127.0.0.1",
		"kms+memory://x?kms_key_id=k&kms_endpoint=127.0.0.1:4599",
	} {
		if _, err := driver.Open(ctx, raw); !errors.Is(err, driver.ErrInvalid) {
			t.Errorf("Open(%s) = %v, want ErrInvalid", raw, err)
		}
	}
	for _, ep := range []string{"http://127.0.0.1:4599", "http://localhost:4599", "http://[::1]:4599", "https://kms.eu-west-2.amazonaws.com"} {
		a, err := driver.Open(ctx, "kms+memory://x?kms_key_id=k&kms_region=eu-west-2&kms_endpoint="+url.QueryEscape(ep))
		if err != nil {
			t.Errorf("kms_endpoint=%s: %v", ep, err)
			continue
		}
		a.Close()
	}
	a, err := driver.Open(ctx, "kms+memory://openurl?kms_key_id=k&kms_region=eu-west-2")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, ok := a.(*kms.Adapter).Inner().(*memory.Adapter); !ok {
		t.Fatalf("inner adapter is %T", a.(*kms.Adapter).Inner())
	}
}
