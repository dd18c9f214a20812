package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/oauth2"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/httpauth"
	"github.com/tokencache/tokencache/internal/backoff"
	"github.com/tokencache/tokencache/storage"
)

// One demo replica is a separate OS process (the hidden "demo-replica"
// command of this same binary), so that the shared store is shared the
// way it is in production: across processes, through the backend only.
//
// Protocol with the demo on stdin/stdout, one JSON object a line:
// the replica prints {"ready":true} when set up, starts its load when it
// reads a line, reports its cumulative counters every reportEvery, and on
// EOF stops, prints {"done":true,...} and exits.

const (
	modeShared  = "shared"  // tokencache: one token per store, one refresher
	modePrivate = "private" // golang.org/x/oauth2: each process refreshes for itself

	envDemoSecret  = "TOKENCACHE_DEMO_CLIENT_SECRET"
	envDemoRefresh = "TOKENCACHE_DEMO_REFRESH_TOKEN"

	reportEvery = 100 * time.Millisecond
)

// replicaReport is one progress line of a replica.
type replicaReport struct {
	Ready  bool  `json:"ready,omitempty"`
	Done   bool  `json:"done,omitempty"`
	OK     int64 `json:"ok"`      // resource requests answered 200
	Fail   int64 `json:"fail"`    // resource requests that failed (401, or no token)
	TokErr int64 `json:"tok_err"` // of those, failures to get a token at all

	Bench *benchReplicaReport `json:"bench,omitempty"` // a bench replica's final report
	// Library is what the library's metrics recorded during the load
	// (shared mode, final report only).
	Library *libraryFigures `json:"library,omitempty"`
}

// replicaLoad is what every replica process is told, demo's and bench's.
type replicaLoad struct {
	mode, tokenURL, clientID string
	goroutines               int
	think                    time.Duration
	// renewAhead, when set, is the library's RenewAhead: background
	// renewal (the bench's steady mode).
	renewAhead time.Duration
}

func (o *replicaLoad) addFlags(f *pflag.FlagSet, goroutines int, think time.Duration) {
	f.StringVar(&o.mode, "mode", modeShared, "shared or private")
	f.StringVar(&o.tokenURL, "token-url", "", "token endpoint (private mode)")
	f.StringVar(&o.clientID, "client-id", "", "client id (private mode)")
	f.IntVar(&o.goroutines, "goroutines", goroutines, "concurrent callers")
	f.DurationVar(&o.think, "think", think, "pause between one caller's calls")
	f.DurationVar(&o.renewAhead, "renew-ahead", 0, "renew tokens this long before expiry in the background (0: when they stop being handed out)")
}

// replicaCommand is a hidden subcommand that the demo and bench run in
// their replica processes. A replica runs until its parent stops it, so it
// has no timeout of its own.
func (a *app) replicaCommand(use string, run func(context.Context) error) *cobra.Command {
	return &cobra.Command{
		Use:    use,
		Short:  "one replica process (internal)",
		Hidden: true,
		Args:   cobra.NoArgs,
		PreRun: func(*cobra.Command, []string) { a.timeout = 0 },
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, _ []string) error {
			return run(ctx)
		}),
	}
}

type replicaOpts struct {
	replicaLoad
	resourceURL string
}

func (a *app) replicaCmd() *cobra.Command {
	var o replicaOpts
	cmd := a.replicaCommand("demo-replica", func(ctx context.Context) error { return a.runReplica(ctx, o) })
	o.addFlags(cmd.Flags(), 8, 10*time.Millisecond)
	cmd.Flags().StringVar(&o.resourceURL, "resource-url", "", "resource the load requests")
	return cmd
}

func (a *app) runReplica(ctx context.Context, o replicaOpts) error {
	base := &http.Transport{MaxIdleConnsPerHost: o.goroutines + 2, IdleConnTimeout: 30 * time.Second}
	defer base.CloseIdleConnections()
	hc := &http.Client{Transport: base, Timeout: a.tune.httpTimeout}

	toks, err := a.openReplicaTokens(ctx, o.replicaLoad, hc)
	if err != nil {
		return err
	}
	defer toks.Close()
	var client *http.Client
	if toks.creds != nil {
		client = &http.Client{Transport: &httpauth.Transport{Authorizer: toks.creds, Base: base}, Timeout: a.tune.httpTimeout}
	} else {
		client = &http.Client{Transport: &oauth2.Transport{Source: toks.src, Base: base}, Timeout: a.tune.httpTimeout}
	}

	link := a.newReplicaLink()
	loadCtx, stop, started := link.awaitStart(ctx)
	if !started {
		return nil // the demo went away before the start
	}
	defer stop()

	var ok, fail, tokErr atomic.Int64
	counts := func() replicaReport {
		return replicaReport{OK: ok.Load(), Fail: fail.Load(), TokErr: tokErr.Load()}
	}
	var wg sync.WaitGroup
	for range o.goroutines {
		wg.Go(func() {
			for loadCtx.Err() == nil {
				pause := o.think
				switch err := request(loadCtx, client, o.resourceURL); {
				case err == nil:
					ok.Add(1)
				case loadCtx.Err() != nil:
					// stopped mid-request: not a failure of the scheme
				default:
					fail.Add(1)
					if _, isTok := err.(tokenFailure); isTok {
						tokErr.Add(1)
					}
					// Back off like a client that retries would.
					pause = 100 * time.Millisecond
				}
				backoff.Sleep(loadCtx, pause)
			}
		})
	}
	tick := time.NewTicker(reportEvery)
	defer tick.Stop()
	for loadCtx.Err() == nil {
		select {
		case <-tick.C:
			link.report(counts())
		case <-loadCtx.Done():
		}
	}
	wg.Wait()
	final := counts()
	final.Done = true
	final.Library = toks.finalFigures(ctx, nil)
	link.report(final)
	return nil
}

// replicaTokens is where a replica's tokens come from, by mode: tokencache's
// Credentials on the shared store, or x/oauth2's token source, which keeps
// the token (and the rotated refresh token) in this process only.
type replicaTokens struct {
	creds *credentials.Credentials // modeShared
	store *storage.Store           // modeShared
	tel   *replicaTelemetry        // modeShared
	src   oauth2.TokenSource       // modePrivate
}

func (a *app) openReplicaTokens(ctx context.Context, o replicaLoad, hc *http.Client) (*replicaTokens, error) {
	mode, tokenURL, clientID := o.mode, o.tokenURL, o.clientID
	switch mode {
	case modeShared:
		tel, err := newReplicaTelemetry(a.getenv, a.stderr)
		if err != nil {
			return nil, err
		}
		st, err := a.openStore(ctx)
		if err != nil {
			return nil, err
		}
		cfg := a.credConfig(st)
		cfg.HTTPClient = hc
		cfg.Logger = nil // a replica's output is the demo's: no lease notices
		if o.renewAhead > 0 {
			cfg.RenewAhead = o.renewAhead
		}
		tel.configure(&cfg)
		c, err := credentials.New(cfg)
		if err != nil {
			st.Close()
			return nil, err
		}
		return &replicaTokens{creds: c, store: st, tel: tel}, nil
	case modePrivate:
		// What most Go services do.
		conf := &oauth2.Config{
			ClientID:     clientID,
			ClientSecret: a.getenv(envDemoSecret),
			Endpoint:     oauth2.Endpoint{TokenURL: tokenURL, AuthStyle: oauth2.AuthStyleInHeader},
		}
		octx := context.WithValue(context.Background(), oauth2.HTTPClient, hc)
		seed := &oauth2.Token{RefreshToken: a.getenv(envDemoRefresh)}
		return &replicaTokens{src: oauth2.ReuseTokenSourceWithExpiry(nil, conf.TokenSource(octx, seed), a.tune.skew)}, nil
	}
	return nil, usagef("--mode must be %s or %s", modeShared, modePrivate)
}

func (t *replicaTokens) Close() {
	if t.creds != nil {
		t.creds.Close()
		t.store.Close()
		t.tel.Shutdown(context.Background())
	}
}

// figures reads what the library recorded; nil in private mode.
func (t *replicaTokens) figures(ctx context.Context) *libraryFigures {
	if t.tel == nil {
		return nil
	}
	f, err := t.tel.figures(ctx)
	if err != nil {
		return nil
	}
	return f
}

// finalFigures closes the Credentials, so that a renewal still in flight
// when the load stopped ends and is recorded (the token server counted it
// when it arrived), and returns what the library recorded since before.
// The Token results are read before the close: a closed Credentials stops
// reporting them, and no call is made any more.
func (t *replicaTokens) finalFigures(ctx context.Context, before *libraryFigures) *libraryFigures {
	pre := t.figures(ctx)
	if pre == nil {
		return nil
	}
	t.tel.mp.ForceFlush(ctx) // --otel: the last export with the Token results
	t.creds.Close()
	post := t.figures(ctx)
	if post == nil {
		return nil
	}
	post.Requests, post.Unpersisted = pre.Requests, pre.Unpersisted
	post.sub(before)
	return post
}

// replicaLink is a replica's end of the line protocol with its parent.
type replicaLink struct {
	mu  sync.Mutex
	out *json.Encoder
	in  *bufio.Reader
}

func (a *app) newReplicaLink() *replicaLink {
	return &replicaLink{out: json.NewEncoder(a.stdout), in: bufio.NewReader(a.stdin)}
}

func (l *replicaLink) report(r replicaReport) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.out.Encode(r)
}

// awaitStart says the replica is ready and waits for the start line. The
// context it returns ends when the parent closes stdin, which means stop;
// ok is false when the parent went away before the start.
func (l *replicaLink) awaitStart(ctx context.Context) (loadCtx context.Context, stop context.CancelFunc, ok bool) {
	l.report(replicaReport{Ready: true})
	if _, err := l.in.ReadString('\n'); err != nil {
		return nil, nil, false
	}
	loadCtx, stop = context.WithCancel(ctx)
	go func() {
		io.Copy(io.Discard, l.in)
		stop()
	}()
	return loadCtx, stop, true
}

// tokenFailure: client.Do failed, which with both transports means no
// token could be had (the resource is on loopback and does not go away).
type tokenFailure struct{ error }

func request(ctx context.Context, client *http.Client, u string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return tokenFailure{err}
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("resource answered %d", resp.StatusCode)
	}
	return nil
}
