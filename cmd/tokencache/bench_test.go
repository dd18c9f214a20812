package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

// TestBenchSmall runs the bench with small numbers on the default
// temporary file store, once for the table and once for --json, and checks
// the targets that do not depend on how busy the machine is: one token
// endpoint call per expiry and no reuse detection. The latency targets are
// logged, not asserted: on a shared machine a waiter's p99 is partly the
// scheduler's, and the bench exits 1 when one misses.
func TestBenchSmall(t *testing.T) {
	small := []string{"bench", "--replicas", "2", "--goroutines", "10", "--expiries", "2"}
	t.Run("table", func(t *testing.T) {
		t.Parallel()
		// Paced calls: two runs at once must not starve each other.
		r := benchExit(t, cli(t, nil, append(small, "--think", "1ms")...))
		for _, want := range []string{
			"PASS  token endpoint calls per expiry: 1.00 (2 calls for 2 expiries",
			"PASS  reuse detections: 0 (want 0)",
			"PASS  failed Token calls: 0 of ",
		} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("no line %q in:\n%s", want, r.stdout)
			}
		}
		for _, row := range []string{"Token between refreshes: calls", "Token during a refresh: calls", "atomic.Pointer baseline p50",
			"store round trip (Load) p50", "heap in use per replica: avg", "RSS per replica: avg"} {
			if !strings.Contains(r.stdout, row) {
				t.Errorf("no row %q in:\n%s", row, r.stdout)
			}
		}
	})
	t.Run("json", func(t *testing.T) {
		t.Parallel()
		checkBenchJSON(t, benchExit(t, cli(t, nil, append(small, "--json")...)), 2)
	})
	if u := os.Getenv("TOKENCACHE_TEST_REDIS_URL"); u != "" {
		t.Run("redis", func(t *testing.T) {
			checkBenchJSON(t, benchExit(t, cli(t, nil, append([]string{"--store", u}, append(small, "--json")...)...)), 2)
		})
	}
}

// benchExit requires a normal run to exit 0 (issue 13: it exited 1
// whenever a latency target was missed on a busy machine): latency
// targets only fail the run with --strict, and are logged here.
func benchExit(t *testing.T, r result) result {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("bench exit %d, stderr: %s\nstdout: %s", r.code, r.stderr, r.stdout)
	}
	for _, l := range strings.Split(r.stdout, "\n") {
		if strings.Contains(l, "MISS  ") {
			t.Logf("bench missed a latency target: %s", strings.TrimSpace(l))
		}
	}
	return r
}

func checkBenchJSON(t *testing.T, r result, expiries int) {
	t.Helper()
	var rep benchReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("bench --json: %v\n%s", err, r.stdout)
	}
	if len(rep.Runs) != 2 || rep.Runs[0].Name != "tokencache" || rep.Runs[1].Name != "x/oauth2" {
		t.Fatalf("runs: %+v", rep.Runs)
	}
	tc, base := rep.Runs[0], rep.Runs[1]
	if tc.CallsPerExpiry != 1 || tc.TokenEndpoint != int64(expiries) || tc.ReuseDetections != 0 || tc.FailedCalls != 0 {
		t.Errorf("tokencache: %.2f endpoint calls per expiry, %d reuse detections, %d failed Token calls; want 1, 0, 0",
			tc.CallsPerExpiry, tc.ReuseDetections, tc.FailedCalls)
	}
	if tc.Between.Calls == 0 || tc.During.Calls == 0 || tc.AtomicP50Ns == 0 || tc.StoreLoadP50Ns == 0 || tc.Memory.HeapInuseMax == 0 {
		t.Errorf("tokencache run lacks measurements: %+v", tc)
	}
	// Two replicas rotating on their own: the second to refresh presents
	// the rotated token.
	if base.ReuseDetections < 1 {
		t.Errorf("x/oauth2 with rotation: %d reuse detections, want at least 1", base.ReuseDetections)
	}
	pass := map[string]bool{}
	for _, tg := range rep.Targets {
		pass[tg.Name] = tg.Pass
		t.Log(tg.Line)
	}
	for _, name := range []string{"calls_per_expiry", "reuse_detections", "failed_calls", "metrics_agree"} {
		if p, ok := pass[name]; !ok || !p {
			t.Errorf("target %s: present %v, pass %v", name, ok, p)
		}
	}
	// The library's metrics saw what the server and the load saw.
	if l := tc.Library; l == nil || l.EndpointCalls != tc.TokenEndpoint || l.Flights["refreshed"] != tc.TokenEndpoint || l.calls() != tc.Calls+tc.Interrupted {
		t.Errorf("library figures %+v disagree with %d endpoint calls and %d Token calls", l, tc.TokenEndpoint, tc.Calls)
	}
	for _, name := range []string{"cached_p50", "waiter_p99"} {
		if _, ok := pass[name]; !ok {
			t.Errorf("no target %s", name)
		}
	}
}

// TestBenchSteady runs the steady-state mode small: renewals in the
// background, one endpoint call per token lifetime, the library's metrics
// agreeing, and --otel stdout printing the replicas' spans and metrics to
// standard error. The p99 target is logged, not asserted.
func TestBenchSteady(t *testing.T) {
	r := benchExit(t, cli(t, nil, "bench", "--steady", "--ttl", "4s", "--replicas", "2", "--goroutines", "5", "--expiries", "2",
		"--think", "1ms", "--json", "--otel", "stdout"))
	var rep benchReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("bench --json: %v\n%s", err, r.stdout)
	}
	if rep.Mode != "steady" || len(rep.Runs) != 1 || rep.RenewAheadNs != int64(2*time.Second) {
		t.Fatalf("mode %q, %d runs, renew ahead %v", rep.Mode, len(rep.Runs), time.Duration(rep.RenewAheadNs))
	}
	pass := map[string]bool{}
	for _, tg := range rep.Targets {
		pass[tg.Name] = tg.Pass
		t.Log(tg.Line)
	}
	for _, name := range []string{"calls_per_expiry", "reuse_detections", "failed_calls", "metrics_agree"} {
		if p, ok := pass[name]; !ok || !p {
			t.Errorf("target %s: present %v, pass %v", name, ok, p)
		}
	}
	if _, ok := pass["every_call_p99"]; !ok {
		t.Error("no target every_call_p99")
	}
	tc := rep.Runs[0]
	if tc.Library == nil || tc.Library.Renewals == 0 || tc.Library.Requests["failed"] != 0 {
		t.Errorf("library figures: %+v; want renewals and no failure", tc.Library)
	}
	for _, want := range []string{`"Name":"tokencache.refresh"`, `"Name":"tokencache.token.requests"`, `"Name":"db.client.operation.duration"`} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("--otel stdout: no %s on standard error", want)
		}
	}
}
