package secret_test

import (
	"strings"
	"testing"

	"github.com/tokencache/tokencache/secret"
)

// RedactURL masks the outer URL's password and secret-named parameters, but a
// URL carried as a parameter value (kms_endpoint, the one URL-valued store
// option) keeps its own userinfo password in full.
func TestReview2RedactNestedURLPassword(t *testing.T) {
	for _, raw := range []string{
		"kms+redis://127.0.0.1:6379/0?kms_key_id=k1&kms_endpoint=http://admin:hunter2-secret@127.0.0.1:4566",
		"kms+redis://127.0.0.1:6379/0?kms_endpoint=http%3A%2F%2Fadmin%3Ahunter2-secret%40127.0.0.1%3A4566",
	} {
		got := secret.RedactURL(raw)
		if strings.Contains(got, "hunter2-secret") {
			t.Errorf("Redact(%q) = %q: the nested URL's password is shown", raw, got)
		}
	}
}
