package storage_test

import (
	"context"
	"strings"
	"testing"

	"github.com/tokencache/tokencache/storage"
)

// TestOpenErrorsRedactURL: the registry's own errors quote the URL only
// through secret.RedactURL.
func TestOpenErrorsRedactURL(t *testing.T) {
	for _, raw := range []string{
		"nosuch://u:topsecret@h",
		"nosuch://h/db?authMechanismProperties=AWS_SESSION_TOKEN:topsecret",
		"nosuch://h?token=topsecret;x=1",
		"a b:topsecret@h://x",
		"redis://u:topsecret@h/%zz",
	} {
		_, err := storage.Open(context.Background(), raw)
		if err == nil || strings.Contains(err.Error(), "topsecret") {
			t.Errorf("Open(%q): %v", raw, err)
		}
	}
}
