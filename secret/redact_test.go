package secret_test

import (
	"strings"
	"testing"

	"github.com/tokencache/tokencache/secret"
)

// TestRedactMasksListedSecrets: every name on Redact's documented list,
// in any case, has its value masked, and nothing else in the URL changes.
func TestRedactMasksListedSecrets(t *testing.T) {
	names := []string{"password", "passwd", "pwd", "secret", "client_secret", "token", "access_token",
		"refresh_token", "id_token", "api_key", "apikey", "key", "sig", "signature", "X-Amz-Security-Token",
		"X-Amz-Signature", "aws_session_token", "authMechanismProperties"}
	for _, n := range names {
		for _, name := range []string{n, strings.ToUpper(n), strings.ToLower(n)} {
			in := "https://h/p?a=1&" + name + "=Zq7xSECRETx&b=2"
			want := "https://h/p?a=1&" + name + "=*****&b=2"
			if got := secret.RedactURL(in); got != want {
				t.Errorf("Redact(%q) = %q, want %q", in, got, want)
			}
		}
	}
}

func TestRedactCases(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"redis://user:pw@host:6379/0", "redis://user:*****@host:6379/0"},
		{"redis://:pw@host", "redis://:*****@host"},
		{"//u:pw@host/x", "//u:*****@host/x"},
		{"file:///home/u/.config/pancloud/creds.json", "file:///home/u/.config/pancloud/creds.json"},
		{"sqlite:rel/tokens.db?table=t", "sqlite:rel/tokens.db?table=t"},
		// Names that name a key, or are no secret, are kept.
		{"kms+redis://h/0?kms_key_id=alias/tc&kms_region=eu-west-1", "kms+redis://h/0?kms_key_id=alias/tc&kms_region=eu-west-1"},
		{"redis://h/0?prefix=tc:", "redis://h/0?prefix=tc:"},
		// Only the secret changes: the other parameters keep their
		// order and their escaping.
		{"mongodb://h/db?w=majority&password=pw&appName=a%20b", "mongodb://h/db?w=majority&password=*****&appName=a%20b"},
		// MongoDB's AWS authentication carries a session token.
		{"mongodb://h/db?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:FQoGZXIvYXdz",
			"mongodb://h/db?authMechanism=MONGODB-AWS&authMechanismProperties=*****"},
		// Presigned URLs.
		{"https://b.s3.amazonaws.com/o?X-Amz-Credential=AKIA%2F20260101&X-Amz-Signature=abcdef&X-Amz-Security-Token=FwoG",
			"https://b.s3.amazonaws.com/o?X-Amz-Credential=AKIA%2F20260101&X-Amz-Signature=*****&X-Amz-Security-Token=*****"},
		{"https://a.blob.core.windows.net/c?sv=2020&sig=abcd%2Bef", "https://a.blob.core.windows.net/c?sv=2020&sig=*****"},
		{"redis://h?pwd=hunter2", "redis://h?pwd=*****"},
		{"redis://h?PASSWD=hunter2", "redis://h?PASSWD=*****"},
		// The net for variants.
		{"redis://h?db_password=hunter2&x-api-key=k", "redis://h?db_password=*****&x-api-key=*****"},
		// An escaped name is still its name.
		{"redis://h?pass%77ord=hunter2", "redis://h?pass%77ord=*****"},
		// A ';' cannot hide a value: url.ParseQuery drops such a pair,
		// which must not mean it is left out of the masking.
		{"redis://h?token=abc;x=1", "redis://h?token=*****;x=1"},
		{"redis://h?x=1;token=abc", "redis://h?x=1;token=*****"},
		// Nor can a malformed escape, which url.ParseQuery drops too.
		{"redis://h?password=hunter2%zz", "redis://h?password=*****"},
		{"redis://h?pass%zzword=hunter2", "redis://h?pass%zzword=*****"},
		// An implicit grant's redirect carries its token in the fragment.
		{"https://app/cb#access_token=abc&state=xyz", "https://app/cb#access_token=*****&state=xyz"},
		// A forgotten "//" leaves the user information in the opaque part.
		{"redis:app:hunter2@cache:6379", "redis:*****@cache:6379"},
		// Unparseable text is never repeated.
		{"redis://%zz", "redis://<unparseable URL>"},
		{"redis://u:hunter2@h/%zz", "redis://<unparseable URL>"},
		{"a b:hunter2@h://x", "<unparseable URL>"},
		{"mongodb://u:p@h/db\x7f", "mongodb://<unparseable URL>"},
	} {
		if got := secret.RedactURL(c.in); got != c.want {
			t.Errorf("Redact(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"redis://user:pw@host:6379/0":                "redis://user:*****@host:6379/0",
		"mongodb://h/db?collection=c&password=pw":    "mongodb://h/db?collection=c&password=*****",
		"file:///home/u/.config/pancloud/creds.json": "file:///home/u/.config/pancloud/creds.json",
	} {
		if got := secret.RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
