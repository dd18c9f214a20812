package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestReview5ParamWithoutEqualsNotEchoed: a --param typed with the wrong
// separator (key:VALUE, or a bare secret) is refused without repeating it:
// the whole argument is then the value, often a secret.
func TestReview5ParamWithoutEqualsNotEchoed(t *testing.T) {
	store := fileURL(filepath.Join(t.TempDir(), "credentials.json"))
	for _, arg := range []string{"key:hidden-value", "hidden-value"} {
		r := cli(t, nil, "--store", store, "init", "--scheme", "api_key", "--param", arg)
		if r.code != exitUsage || !strings.Contains(r.stderr, "--param") || strings.Contains(r.stderr, "hidden-value") {
			t.Errorf("--param %s: exit %d, stderr %q; want a usage error naming --param without the value", arg, r.code, r.stderr)
		}
	}
}
