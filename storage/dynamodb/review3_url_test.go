package dynamodb_test

import (
	"context"
	"strings"
	"testing"

	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage/driver"
)

// review3: a store URL's error must not repeat a secret. The postgres and
// etcd adapters drop the query from their URL errors because a secret in
// a parameter secret.RedactURL does not recognise (a misspelt name, or a
// URL nested in a value) would escape it; dynamodb's URL errors
// repeat the whole query through Redact. Since main 636bf3a Redact masks
// the nested URL's password; the misspelt name still escapes.
func TestReview3URLErrorsHideSecrets(t *testing.T) {
	const pw = "s3cret-pw-xyzzy"
	for _, raw := range []string{
		// basic auth for a proxy in front of the endpoint, plus a typo
		"dynamodb://tokens?endpoint=https://proxy:" + pw + "@dynamo.internal.example&create_table=yes",
		// a misspelt parameter, as the other adapters guard against
		"dynamodb://tokens?pasword=" + pw,
	} {
		_, err := driver.Open(context.Background(), raw)
		if err == nil {
			t.Fatalf("%s: opened", secret.RedactURL(raw))
		}
		if strings.Contains(err.Error(), pw) {
			t.Errorf("error repeats the secret: %v", err)
		}
	}
}
