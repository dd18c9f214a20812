package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
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
	// revoking says that endpoint errors come from the revocation
	// endpoint, so that errorLine names it rather than the token URL.
	revoking bool
	// deadline is when --timeout ends the command (zero: no timeout).
	deadline time.Time
	// notice says once on stderr whom a long lease wait waits for.
	notice *leaseNotice
	// creates is set for the commands that may create the store (init,
	// login); command is the running command's name.
	creates bool
	command string
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
	var ce *childExit
	if errors.As(err, &ce) {
		if ce.code < 0 {
			return exitOther // killed by a signal
		}
		return ce.code
	}
	code := exitCode(err)
	if !a.started {
		code = exitUsage
	}
	if !a.started {
		err = errors.New(suggestion(err.Error()))
	}
	fmt.Fprintln(e.stderr, a.errorLine(err, code))
	return code
}

// suggestion rewrites cobra's multi-line "Did you mean this?" block into
// one line that reads as a sentence.
func suggestion(msg string) string {
	head, tail, ok := strings.Cut(msg, "\n\nDid you mean this?\n")
	if !ok {
		return msg
	}
	var names []string
	for _, l := range strings.Split(tail, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			names = append(names, strconv.Quote(l))
		}
	}
	return head + "; did you mean " + strings.Join(names, " or ") + "?"
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
	// cobra's "completion" command writes bash, zsh, fish and PowerShell
	// scripts; profile arguments and --profile complete from the store.
	root.Version = version()
	root.SetVersionTemplate("tokencache {{.Version}}\n")

	pf := root.PersistentFlags()
	pf.StringVar(&a.storeURL, "store", a.envOr("TOKENCACHE_STORE", ""),
		"store URL: file:///path, sqlite:///path, ... (env TOKENCACHE_STORE; default: pancloud's credentials.json, or $PAN_CREDENTIALS_DBFILE)")
	pf.StringVarP(&a.profile, "profile", "p", a.envOr("TOKENCACHE_PROFILE", "default"), "profile name, or the command's argument (env TOKENCACHE_PROFILE)")
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
		createsStore(profileArg(a.initCmd())), profileArg(a.tokenCmd()), a.listCmd(), profileArg(a.showCmd()),
		profileArg(a.refreshCmd()), profileArg(a.revokeCmd()), profileArg(a.rmCmd()), a.copyCmd(),
		createsStore(profileArg(a.loginCmd())), a.leaseCmd(), a.execCmd(), a.demoCmd(), a.replicaCmd(), a.benchCmd(), a.benchReplicaCmd(),
	)
	root.AddCommand(a.serveCmd(), a.testServerCmd())
	for _, c := range root.Commands() {
		cmds := append([]*cobra.Command{c}, c.Commands()...)
		for _, c := range cmds {
			if c.Annotations[annProfileArg] == "true" {
				c.ValidArgsFunction = a.completeProfiles
			}
		}
	}
	root.RegisterFlagCompletionFunc("profile", a.completeProfiles)
	return root
}

func (a *app) envOr(name, def string) string {
	if v := a.getenv(name); v != "" {
		return v
	}
	return def
}

// Command annotations runE reads.
const (
	annCreates    = "tokencache/creates-store" // the command may create the store
	annProfileArg = "tokencache/profile-arg"   // [PROFILE] may be given as the argument
)

// profileArg lets cmd take the profile as its one optional argument, as
// well as by --profile/-p or TOKENCACHE_PROFILE.
func profileArg(cmd *cobra.Command) *cobra.Command {
	cmd.Use += " [PROFILE]"
	cmd.Args = cobra.MaximumNArgs(1)
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[annProfileArg] = "true"
	return cmd
}

// createsStore marks cmd as one that may create the store.
func createsStore(cmd *cobra.Command) *cobra.Command {
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[annCreates] = "true"
	return cmd
}

// runE wraps a command body: it marks the run as started (see app.started)
// and applies the global timeout.
func (a *app) runE(fn func(ctx context.Context, cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		a.started = true
		a.command = cmd.Name()
		a.creates = cmd.Annotations[annCreates] == "true"
		if cmd.Annotations[annProfileArg] == "true" && len(args) == 1 {
			if f := cmd.Flag("profile"); f.Changed && f.Value.String() != args[0] {
				return usagef("the profile is given twice: %q as an argument and %q by --profile", args[0], f.Value.String())
			}
			a.profile = args[0]
		}
		ctx := cmd.Context()
		if a.timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, a.timeout)
			defer cancel()
			a.deadline, _ = ctx.Deadline()
		}
		return fn(ctx, cmd, args)
	}
}

// openStore opens the global store, defaulting to pancloud's file. Only
// commands annotated as creating the store (init, login) may open a local
// store file that does not exist: the others would leave an empty
// database at a mistyped path.
func (a *app) openStore(ctx context.Context) (*storage.Store, error) {
	if a.storeURL == "" {
		u, err := defaultStoreURL(a.getenv)
		if err != nil {
			return nil, err
		}
		a.storeURL = u
	}
	if err := checkProfileName(a.profile); err != nil {
		return nil, err
	}
	ls, err := resolveStore(a.storeURL, a.getenv)
	if err != nil {
		return nil, err
	}
	a.storeURL = ls.url
	switch {
	case a.creates && ls.memory:
		return nil, usagef("a memory:// store lives only as long as this process: nothing %s saves would remain; give a file://, sqlite:// or shared store", a.command)
	case !a.creates:
		if err := ls.checkExists(); err != nil {
			return nil, err
		}
	}
	var left time.Duration
	if !a.deadline.IsZero() {
		left = max(time.Until(a.deadline), time.Millisecond)
	}
	st, err := storage.Open(ctx, boundStoreURL(a.storeURL, left))
	if err != nil && a.creates {
		if why := ls.whyNotCreatable(); why != "" {
			err = fmt.Errorf("%s: %w", why, err)
		}
	}
	return st, err
}

// credConfig is the library configuration for a one-shot CLI process.
func (a *app) credConfig(st *storage.Store) credentials.Config {
	// The library runs a token endpoint call detached from the caller's
	// context, so that a rotated refresh token is not lost to a cancel,
	// and Close waits for it. --timeout bounds the whole command: the call
	// gets at most what is left of it, so that a hung endpoint ends the
	// command on time, and the failed call releases the lease.
	refreshTimeout, httpTimeout := a.tune.refreshTimeout, a.tune.httpTimeout
	if !a.deadline.IsZero() {
		left := max(time.Until(a.deadline), time.Millisecond)
		refreshTimeout, httpTimeout = min(refreshTimeout, left), min(httpTimeout, left)
	}
	a.notice = &leaseNotice{w: a.stderr, deadline: a.deadline}
	return credentials.Config{
		Store:      st,
		Profile:    a.profile,
		Logger:     slog.New(a.notice.handler()),
		HTTPClient: &http.Client{Timeout: httpTimeout},
		Skew:       a.tune.skew,
		// A process that exits right after printing must not start a
		// background renewal: cancelled mid-call, it could lose a rotated
		// refresh token. With RenewAhead equal to Skew renewal starts only
		// when the token stops being handed out, that is, in the foreground.
		RenewAhead:     a.tune.skew,
		LeaseTTL:       a.tune.leaseTTL,
		RefreshTimeout: refreshTimeout,
		PollInterval:   a.tune.pollInterval,
		MaxRetries:     a.tune.maxRetries,
	}
}

// withCredentials opens the store and the profile's Credentials (see
// profileCredentials), runs fn and closes both. With a developer token in
// the environment the store may be created (but by revoke): the first
// token creates the profile.
func (a *app) withCredentials(ctx context.Context, fn func(*credentials.Credentials) error) error {
	if a.developerToken() != nil && a.command != "revoke" {
		a.creates = true
	}
	st, err := a.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	c, closeCreds, err := a.profileCredentials(ctx, st)
	if err != nil {
		return err
	}
	err = fn(c)
	a.notice.stop()
	// Close writes a rotated refresh token a store outage held back, or
	// says which recovery journal entry keeps it: the command must not
	// exit 0 while the only valid refresh token is in its memory.
	if cerr := closeCreds(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	return err
}
