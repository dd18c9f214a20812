// Package reexec runs copies of the current test binary that re-run one
// test as a child process, for tests that must span OS processes (file
// locks, leases, watches). The child learns its part from an environment
// variable; the test checks that variable first and, when set, does the
// child's work instead of the parent's.
package reexec

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
)

// Command returns a command that re-runs exactly the test called name
// (subtests included) in a copy of this binary, with env=spec set. Extra
// args go to the test binary, e.g. "-test.v" to see the child's t.Log.
func Command(ctx context.Context, name, env, spec string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], append([]string{"-test.run=" + Pattern(name), "-test.count=1"}, args...)...)
	cmd.Env = append(os.Environ(), env+"="+spec)
	return cmd
}

// Pattern is the -test.run pattern that matches exactly the test called
// name: each level of a subtest name anchored on its own.
func Pattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}
