package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
)

// demoSkew is how early the demo's clients stop using a token. The test
// server's tokens are valid from a whole second (JWT iat), so a token can
// die up to a second before the client's clock says: one second covers that.
const demoSkew = time.Second

const demoProfile = "tokencache-demo"

type demoOpts struct {
	replicas, goroutines, expiries int
	ttl, latency, think            time.Duration
	otel                           string // --otel: see otel_flag.go
}

// demoPhase is one way of running the same load.
type demoPhase struct {
	title  string // progress heading
	column string // summary column heading
	mode   string
	rotate bool
}

func (a *app) demoCmd() *cobra.Command {
	o := demoOpts{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Show one refresh per expiry across processes, against per-process refresh",
		Long: `Start an OAuth 2.0 test server on 127.0.0.1 (short-lived access tokens,
rotating refresh tokens with reuse detection, slow token endpoint) and run
the same load three ways, each with --replicas separate processes of
--goroutines requesters each, for --expiries access-token lifetimes:

  1. tokencache: the replicas share one store (a temporary file store, or
     --store); one replica refreshes per expiry, the others adopt its token.
  2. x/oauth2: each replica keeps its own token and refresh token in memory.
     The replicas start from the same refresh token; the first refresh
     rotates it, the next replica presents the rotated one, the server
     detects reuse and revokes the whole grant, and the load fails.
  3. the same without rotation: it works, at one refresh per replica per expiry.

Progress is printed as it goes, then a side-by-side summary. The demo exits
0 when the shared-store run served every request without a reuse detection.`,
		Args: cobra.NoArgs,
		PreRun: func(cmd *cobra.Command, _ []string) {
			if !cmd.Flag("timeout").Changed {
				a.timeout = 10 * time.Minute
			}
		},
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
			return a.demo(ctx, o, cmd.Flag("store").Changed)
		}),
	}
	f := cmd.Flags()
	f.IntVar(&o.replicas, "replicas", 4, "replica processes")
	f.IntVar(&o.goroutines, "goroutines", 8, "concurrent requesters per replica")
	f.IntVar(&o.expiries, "expiries", 3, "access-token lifetimes each run lasts")
	f.DurationVar(&o.ttl, "ttl", 2*time.Second, "access-token lifetime, whole seconds, at least 2s")
	f.DurationVar(&o.latency, "latency", 100*time.Millisecond, "token endpoint latency")
	f.DurationVar(&o.think, "think", 10*time.Millisecond, "pause between one requester's requests")
	f.MarkHidden("think")
	addOtelFlag(f, &o.otel)
	return cmd
}

func (a *app) demo(ctx context.Context, o demoOpts, storeGiven bool) error {
	switch {
	case o.replicas < 1 || o.goroutines < 1 || o.expiries < 1:
		return usagef("demo: --replicas, --goroutines and --expiries must be at least 1")
	case o.ttl < 2*time.Second || o.ttl%time.Second != 0:
		return usagef("demo: --ttl must be whole seconds, at least 2s (tokens are used until 1s before expiry)")
	}
	storeURL, cleanup, err := a.replicaStore("demo", storeGiven)
	if err != nil {
		return err
	}
	defer cleanup()
	scheme, _, _ := strings.Cut(storeURL, ":")

	phases := []demoPhase{
		{title: "tokencache, shared " + scheme + " store", column: "shared store", mode: modeShared, rotate: true},
		{title: "x/oauth2, token per process", column: "per process", mode: modePrivate, rotate: true},
		{title: "x/oauth2, token per process, rotation off", column: "per process", mode: modePrivate, rotate: false},
	}
	life := o.ttl - demoSkew
	fmt.Fprintf(a.stdout, "tokencache demo: %d replica processes x %d goroutines, access tokens live %s (used for %s), token endpoint latency %s,\n"+
		"refresh-token rotation with reuse detection; each run lasts %d token lifetimes.\n",
		o.replicas, o.goroutines, o.ttl, life, o.latency, o.expiries)

	results := make([]phaseResult, len(phases))
	for i, p := range phases {
		fmt.Fprintf(a.stdout, "\n[%d/%d] %s\n", i+1, len(phases), p.title)
		r, err := a.runPhase(ctx, o, p, storeURL, storeGiven)
		if err != nil {
			return err
		}
		results[i] = r
		fmt.Fprintf(a.stdout, "  -> %s\n", r.verdict(o))
	}
	a.printSummary(o, phases, results)

	shared := results[0]
	if shared.fail > 0 || shared.stats.ReuseDetections > 0 || shared.crashed > 0 {
		return fmt.Errorf("demo: the shared-store run had %d failed requests, %d reuse detections and %d failed replicas",
			shared.fail, shared.stats.ReuseDetections, shared.crashed)
	}
	return nil
}

func (a *app) printSummary(o demoOpts, phases []demoPhase, rs []phaseResult) {
	fmt.Fprintf(a.stdout, "\nSummary: %d replicas x %d goroutines, %d expiries of a %s token\n", o.replicas, o.goroutines, o.expiries, o.ttl)
	row := func(label string, cell func(int) string) {
		line := fmt.Sprintf("  %-22s", label)
		for i := range phases {
			line += fmt.Sprintf("%15s", cell(i))
		}
		fmt.Fprintln(a.stdout, strings.TrimRight(line, " "))
	}
	row("", func(i int) string { return phases[i].column })
	row("", func(i int) string {
		if phases[i].rotate {
			return "rotation"
		}
		return "no rotation"
	})
	row("requests served", func(i int) string { return fmt.Sprint(rs[i].ok) })
	row("requests failed", func(i int) string { return fmt.Sprint(rs[i].fail) })
	row("token endpoint calls", func(i int) string { return fmt.Sprint(rs[i].stats.TokenCalls) })
	row("calls per expiry", func(i int) string {
		return fmt.Sprintf("%.1f", float64(rs[i].stats.TokenCalls)/float64(o.expiries))
	})
	row("reuse detections", func(i int) string { return fmt.Sprint(rs[i].stats.ReuseDetections) })
}

// newDemoSecret is a throwaway client secret for the test server.
func newDemoSecret() string { return rand.Text() }

// demoServer starts the test authorization server one run uses: a fresh one
// per run, so that counters and grants do not carry over.
func demoServer(o demoOpts, rotate bool) *oauthtest.Server {
	srv := oauthtest.NewServer(oauthtest.Options{AccessTTL: o.ttl, Rotate: rotate})
	srv.SetLatency(o.latency)
	return srv
}

// replicaStore is the store URL a demo or bench run shares between its
// replica processes, and how to clean it up afterwards. Never the user's
// own store unless asked: the default is a throwaway file store
// (TOKENCACHE_STORE is ignored here on purpose).
func (a *app) replicaStore(what string, storeGiven bool) (storeURL string, cleanup func(), err error) {
	if storeGiven {
		if scheme, _, _ := strings.Cut(a.storeURL, ":"); scheme == "memory" || scheme == "kms+memory" {
			return "", nil, usagef("%s: the replicas are separate processes and a memory:// store lives in one; use file://, sqlite://, redis://, ...", what)
		}
		return a.storeURL, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "tokencache-"+what+"-")
	if err != nil {
		return "", nil, err
	}
	u := (&url.URL{Scheme: "file", Path: filepath.Join(dir, "credentials.json")}).String()
	return u, func() { os.RemoveAll(dir) }, nil
}

// seedShared writes a run's profile: a refresh token and no access token,
// so the first request of the run finds it expired.
func seedShared(ctx context.Context, storeURL, profile, tokenURL, clientID, clientSecret, refreshToken string) error {
	st, err := storage.Open(ctx, storeURL)
	if err != nil {
		return err
	}
	defer st.Close()
	_, _, err = st.Update(ctx, profile, func(r *storage.Record) error {
		*r = storage.Record{Profile: profile, TokenURL: tokenURL, ClientID: clientID,
			ClientSecret: secret.Secret(clientSecret)}
		r.Grant(refreshToken)
		return nil
	})
	return err
}
