package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/storage"
)

// env is the process's outside world, passed in so that tests can run
// commands in process with their own streams and environment.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// environ lists the whole environment (os.Environ), for the child
	// processes the CLI starts with a filtered copy of it; nil is empty.
	environ func() []string
}

// app holds the global flags and the state one command run shares.
type app struct {
	env
	storeURL string
	profile  string
	timeout  time.Duration
	tune     tuning
	// started is set once a command's own code runs: errors before that
	// are cobra's parsing and validation, that is, usage errors.
	started bool
}

// tuning exposes credentials.Config's timing knobs as hidden flags: the
// library defaults suit real tokens, the demo and tests use 2 s ones.
type tuning struct {
	skew, leaseTTL, refreshTimeout, pollInterval, httpTimeout time.Duration
	maxRetries                                                int
}

// run executes one command line and returns the exit code.
func run(ctx context.Context, args []string, e env) int {
	a := &app{env: e}
	root := a.newRoot()
	root.SetArgs(args)
	root.SetIn(e.stdin)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	code := exitCode(err)
	if !a.started {
		code = exitUsage
	}
	fmt.Fprintln(e.stderr, a.errorLine(err, code))
	return code
}

func (a *app) newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "tokencache",
		Short: "Shared OAuth 2.0 token cache: one refresh per expiry across all processes",
		Long: `tokencache keeps OAuth 2.0 credentials (client id and secret, access token,
rotating refresh token) for named profiles in a shared store, and hands out
access tokens so that every process sharing the store reuses one token and
exactly one of them refreshes it.

Try it: tokencache demo`,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetUsageTemplate(root.UsageTemplate() + "\n" + exitCodeHelp)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{msg: err.Error()} })
	// Without this cobra adds a "completion" command, which is noise here.
	root.CompletionOptions.DisableDefaultCmd = true

	pf := root.PersistentFlags()
	pf.StringVar(&a.storeURL, "store", a.envOr("TOKENCACHE_STORE", ""),
		"store URL: file:///path, sqlite:///path, ... (env TOKENCACHE_STORE; default: pancloud's credentials.json, or $PAN_CREDENTIALS_DBFILE)")
	pf.StringVar(&a.profile, "profile", a.envOr("TOKENCACHE_PROFILE", "default"), "profile name (env TOKENCACHE_PROFILE)")
	pf.DurationVar(&a.timeout, "timeout", time.Minute, "give up after this long")
	pf.DurationVar(&a.tune.skew, "skew", 30*time.Second, "hand out only tokens valid at least this much longer")
	pf.DurationVar(&a.tune.leaseTTL, "lease-ttl", 30*time.Second, "how long a refresher may hold the refresh lease")
	pf.DurationVar(&a.tune.refreshTimeout, "refresh-timeout", 10*time.Second, "timeout of one token endpoint call")
	pf.DurationVar(&a.tune.pollInterval, "poll-interval", 100*time.Millisecond, "how often a waiter re-reads a store that cannot notify")
	pf.DurationVar(&a.tune.httpTimeout, "http-timeout", 30*time.Second, "timeout of any HTTP request")
	pf.IntVar(&a.tune.maxRetries, "max-retries", 3, "retries of a temporary token endpoint failure (negative: none)")
	for _, name := range []string{"skew", "lease-ttl", "refresh-timeout", "poll-interval", "http-timeout", "max-retries"} {
		pf.MarkHidden(name)
	}

	root.AddCommand(
		a.initCmd(), a.tokenCmd(), a.listCmd(), a.showCmd(), a.refreshCmd(), a.revokeCmd(),
		a.rmCmd(), a.copyCmd(), a.loginCmd(), a.demoCmd(), a.replicaCmd(), a.benchCmd(), a.benchReplicaCmd(),
	)
	root.AddCommand(a.serveCmd())
	return root
}

func (a *app) envOr(name, def string) string {
	if v := a.getenv(name); v != "" {
		return v
	}
	return def
}

// runE wraps a command body: it marks the run as started (see app.started)
// and applies the global timeout.
func (a *app) runE(fn func(ctx context.Context, cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		a.started = true
		ctx := cmd.Context()
		if a.timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, a.timeout)
			defer cancel()
		}
		return fn(ctx, cmd, args)
	}
}

// openStore opens the global store, defaulting to pancloud's file.
func (a *app) openStore(ctx context.Context) (*storage.Store, error) {
	if a.storeURL == "" {
		u, err := defaultStoreURL()
		if err != nil {
			return nil, err
		}
		a.storeURL = u
	}
	if err := storage.CheckKey(a.profile); err != nil {
		return nil, usagef("bad --profile: %v", err)
	}
	return storage.Open(ctx, a.storeURL)
}

// credConfig is the library configuration for a one-shot CLI process.
func (a *app) credConfig(st *storage.Store) credentials.Config {
	return credentials.Config{
		Store:      st,
		Profile:    a.profile,
		HTTPClient: &http.Client{Timeout: a.tune.httpTimeout},
		Skew:       a.tune.skew,
		// A process that exits right after printing must not start a
		// background renewal: cancelled mid-call, it could lose a rotated
		// refresh token. With RenewAhead equal to Skew renewal starts only
		// when the token stops being handed out, that is, in the foreground.
		RenewAhead:     a.tune.skew,
		LeaseTTL:       a.tune.leaseTTL,
		RefreshTimeout: a.tune.refreshTimeout,
		PollInterval:   a.tune.pollInterval,
		MaxRetries:     a.tune.maxRetries,
	}
}

// withCredentials opens the store and the profile's Credentials, runs fn
// and closes both.
func (a *app) withCredentials(ctx context.Context, fn func(*credentials.Credentials) error) error {
	st, err := a.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	c, err := credentials.New(a.credConfig(st))
	if err != nil {
		return usagef("%v", err)
	}
	err = fn(c)
	// Close writes a rotated refresh token a store outage held back, or
	// says which recovery journal entry keeps it: the command must not
	// exit 0 while the only valid refresh token is in its memory.
	if cerr := c.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	return err
}
