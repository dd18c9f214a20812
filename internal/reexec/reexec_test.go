package reexec

import (
	"regexp"
	"testing"
)

func TestPatternMatchesOnlyThatTest(t *testing.T) {
	p := Pattern("TestStorm/kms+redis")
	if p != `^TestStorm$/^kms\+redis$` {
		t.Fatalf("Pattern = %q", p)
	}
	level := regexp.MustCompile(`^kms\+redis$`)
	if level.MatchString("kms+redis-cluster") {
		t.Fatal("pattern matches a longer name")
	}
}
