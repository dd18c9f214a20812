package mongo_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage/driver"
	_ "github.com/tokencache/tokencache/storage/mongo" // registers the scheme
)

func TestOpenURL(t *testing.T) {
	ctx := context.Background()
	for _, raw := range []string{
		"mongodb://user:hunter2@127.0.0.1:1/db?claims=maybe",
		"mongodb://user:hunter2@127.0.0.1:1/db?connectTimeoutMS=notanumber",
		"mongodb://user:hunter2@127.0.0.1:1/a/b",
	} {
		_, err := driver.Open(ctx, raw)
		if !errors.Is(err, driver.ErrInvalid) {
			t.Errorf("Open(%s) = %v, want ErrInvalid", secret.RedactURL(raw), err)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error shows the password: %v", err)
		}
	}
}
