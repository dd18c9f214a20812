package secret_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/tokencache/tokencache/secret"
)

// FuzzRedact: no panic; text that is not a URL is never repeated; and no
// password or value of a parameter on Redact's list survives: the output
// still parses, shows "*****" in each such place, and does not contain the
// secret (checked where the secret is distinctive: it is written unescaped
// and appears only once in the input, so it cannot come from elsewhere).
func FuzzRedact(f *testing.F) {
	for _, s := range []string{"redis://u:pw@h:1/0", "mongodb://h/db?password=x", "file:///a/b", "::", "redis://%zz",
		"kms+redis://h?kms_key_id=k", "redis://h?token=abc;x=1", "mongodb://h/?authMechanismProperties=AWS_SESSION_TOKEN:abcd",
		"https://h/o?X-Amz-Signature=abcd&sig=efgh", "redis:u:pw@h", "https://app/cb#access_token=abcd", "a b:pw@h://x"} {
		f.Add(s)
	}
	listed := map[string]bool{}
	for _, n := range []string{"password", "passwd", "pwd", "secret", "client_secret", "token", "access_token",
		"refresh_token", "api_key", "apikey", "key", "sig", "signature", "x-amz-security-token",
		"x-amz-signature", "aws_session_token", "authmechanismproperties"} {
		listed[n] = true
	}
	f.Fuzz(func(t *testing.T, raw string) {
		out := secret.RedactURL(raw)
		u, err := url.Parse(raw)
		if err != nil {
			if !strings.HasSuffix(out, "<unparseable URL>") || len(out) > len(raw)+len("://<unparseable URL>") {
				t.Fatalf("Redact(%q) = %q for text that is not a URL", raw, out)
			}
			return
		}
		distinctive := func(v string) bool {
			return len(v) >= 4 && !strings.ContainsAny(v, "%+*") && strings.Count(raw, v) == 1
		}
		var secrets []string
		if pw, ok := u.User.Password(); ok {
			secrets = append(secrets, pw)
			v, err := url.Parse(out)
			if err != nil {
				t.Fatalf("Redact(%q) = %q, which does not parse: %v", raw, out, err)
			}
			if p, _ := v.User.Password(); p != "*****" {
				t.Fatalf("Redact(%q) = %q keeps a password", raw, out)
			}
		}
		for _, pair := range strings.FieldsFunc(u.RawQuery, func(r rune) bool { return r == '&' || r == ';' }) {
			name, value, _ := strings.Cut(pair, "=")
			if n, err := url.QueryUnescape(name); err == nil && listed[strings.ToLower(n)] {
				secrets = append(secrets, value)
			}
		}
		if v, err := url.Parse(out); err == nil {
			for name, vs := range v.Query() {
				for _, val := range vs {
					if listed[strings.ToLower(name)] && val != "" && val != "*****" {
						t.Fatalf("Redact(%q) = %q keeps %s=%q", raw, out, name, val)
					}
				}
			}
		}
		for _, s := range secrets {
			if distinctive(s) && strings.Contains(out, s) {
				t.Fatalf("Redact(%q) = %q keeps the secret %q", raw, out, s)
			}
		}
	})
}
