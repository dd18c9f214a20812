package main

import (
	"strconv"
	"strings"
	"testing"
)

// TestDemoSmall runs the README's first command with small numbers and
// reads its summary: the shared store costs one token call per expiry and
// no reuse detection, per-process refresh with rotation trips reuse
// detection.
func TestDemoSmall(t *testing.T) {
	const expiries = 2
	r := cli(t, nil, "demo", "--replicas", "2", "--goroutines", "2", "--expiries", strconv.Itoa(expiries)).mustSucceed(t)
	t.Logf("demo output:\n%s", r.stdout)

	row := func(label string) []int {
		t.Helper()
		_, tail, ok := strings.Cut(r.stdout, "\nSummary:")
		if !ok {
			t.Fatalf("no summary in:\n%s", r.stdout)
		}
		for line := range strings.SplitSeq(tail, "\n") {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(line), label); ok {
				var cells []int
				for _, f := range strings.Fields(rest) {
					n, err := strconv.Atoi(f)
					if err != nil {
						t.Fatalf("summary row %q: %v", line, err)
					}
					cells = append(cells, n)
				}
				if len(cells) != 3 {
					t.Fatalf("summary row %q: want 3 columns", line)
				}
				return cells
			}
		}
		t.Fatalf("summary has no %q row:\n%s", label, tail)
		return nil
	}
	calls, reuse, served, failed := row("token endpoint calls"), row("reuse detections"), row("requests served"), row("requests failed")
	if calls[0] != expiries {
		t.Errorf("shared store: %d token endpoint calls for %d expiries, want 1 per expiry", calls[0], expiries)
	}
	if reuse[0] != 0 || failed[0] != 0 || served[0] == 0 {
		t.Errorf("shared store: %d reuse detections, %d failed and %d served requests", reuse[0], failed[0], served[0])
	}
	if reuse[1] < 1 || failed[1] == 0 {
		t.Errorf("per process with rotation: %d reuse detections and %d failed requests, want both > 0", reuse[1], failed[1])
	}
	if calls[2] < 2*expiries || reuse[2] != 0 {
		t.Errorf("per process without rotation: %d calls (want one per replica per expiry) and %d reuse detections", calls[2], reuse[2])
	}
}
