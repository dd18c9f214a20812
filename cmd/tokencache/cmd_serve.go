package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokencache/tokencache/agent"
	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/secret"
)

// minKeyLen is the shortest agent key accepted: 16 bytes from a key file
// is already more than a guesser can try over loopback.
const minKeyLen = 16

func (a *app) serveCmd() *cobra.Command {
	var (
		socket, tcp, keyFile      string
		allow                     []string
		headerTimeout, shutdownIn time.Duration
		verbose                   bool
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the profiles' access tokens over a local socket (an agent for programs in any language)",
		Long: `Serve access tokens of the store's profiles over HTTP to local programs, in
any language: a Unix socket only this user can open (default), or a loopback
TCP port guarded by a key. Agents, "tokencache token" runs and Go programs
sharing a store make one refresh per expiry between them.

  GET  /v1/token/PROFILE           {"access_token","token_type","expires_in","expiry"}
  GET  /v1/token/PROFILE/raw       the bare access token
  POST /v1/token/PROFILE/rejected  report a token a resource server rejected (401):
                                   one refresh for every reporter; answers the new token
  GET  /readyz, /metrics, /healthz

Every request but /healthz needs the header "Tokencache-Agent: 1", and over
TCP "Authorization: Bearer KEY" with the key in --key-file (mode 0600).
Only the --allow profiles are served (default: --profile; "*" for all).
--timeout bounds how long one request waits for a refresh (504 after it;
the refresh goes on for the others).
The first line on stdout says where the agent listens. SIGTERM or SIGINT
stops it gracefully; it exits non-zero if a rotated refresh token could
not be written to the store (the error names the recovery journal entry).`,
		Example: `  tokencache --store sqlite:///var/lib/tokens.db serve --allow default,reports &
  curl -sf --unix-socket "$XDG_RUNTIME_DIR/tokencache/agent.sock" \
      -H 'Tokencache-Agent: 1' http://localhost/v1/token/default/raw`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Not a.runE: --timeout bounds each request here, not the run.
			a.started = true
			if len(allow) == 0 {
				allow = []string{a.profile}
			}
			var key secret.Secret
			if keyFile != "" {
				k, err := readKeyFile(keyFile)
				if err != nil {
					return err
				}
				key = k
			}
			var l net.Listener
			var where string
			switch {
			case tcp != "" && cmd.Flags().Changed("socket"):
				return usagef("--socket and --tcp exclude each other")
			case tcp != "":
				if key == "" {
					return usagef("--tcp needs --key-file: any local user can connect to a loopback port")
				}
				var err error
				if l, err = agent.ListenLoopback(tcp); err != nil {
					return usagef("%v", err)
				}
				where = "tcp:" + l.Addr().String()
			default:
				if socket == "" {
					p, err := a.defaultSocket()
					if err != nil {
						return err
					}
					socket = p
				}
				var err error
				if l, err = agent.ListenUnix(socket); err != nil {
					return err
				}
				where = "unix:" + socket
			}
			defer l.Close()
			return a.serve(cmd.Context(), l, where, agentOptions{allow: allow, key: key, headerTimeout: headerTimeout, shutdownIn: shutdownIn, verbose: verbose})
		},
	}
	f := cmd.Flags()
	f.StringVar(&socket, "socket", "", "Unix socket path (default $XDG_RUNTIME_DIR/tokencache/agent.sock, else tokencache/agent.sock in the user's config directory)")
	f.StringVar(&tcp, "tcp", "", "listen on this loopback TCP address instead (127.0.0.1:PORT or [::1]:PORT); needs --key-file")
	f.StringVar(&keyFile, "key-file", "", "file holding the key clients must send as \"Authorization: Bearer KEY\" (mode 0600, at least 16 bytes)")
	f.StringSliceVar(&allow, "allow", nil, `profiles to serve, comma-separated; "*" serves all (default: --profile)`)
	f.DurationVar(&headerTimeout, "read-header-timeout", agent.DefaultReadHeaderTimeout, "close connections that send no complete request header within this long")
	f.DurationVar(&shutdownIn, "shutdown-timeout", 10*time.Second, "on SIGTERM, how long requests in progress may finish")
	f.BoolVarP(&verbose, "verbose", "v", false, "log refused requests and refresh details on stderr")
	f.MarkHidden("read-header-timeout")
	return cmd
}

type agentOptions struct {
	allow                     []string
	key                       secret.Secret
	headerTimeout, shutdownIn time.Duration
	verbose                   bool
}

// serve runs the agent on l until SIGTERM or SIGINT, then shuts it down:
// requests in progress finish, and every Credentials is closed, which
// writes or reports a rotated refresh token a store outage held back.
func (a *app) serve(ctx context.Context, l net.Listener, where string, o agentOptions) (err error) {
	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: level}))
	st, err := a.openStore(ctx)
	if err != nil {
		return err
	}
	// Deferred first, so it runs last: after the Profiles' final writes.
	defer st.Close()
	cfg := a.credConfig(st)
	// A long-running agent renews ahead of expiry in the background (the
	// library default), unlike a one-shot CLI process.
	cfg.RenewAhead = 0
	cfg.Logger = logger
	profiles, err := credentials.NewProfiles(cfg)
	if err != nil {
		return usagef("%v", err)
	}
	// The Profiles is ours, not the Handler's: closing it is the last
	// write of a rotated refresh token a store outage held back.
	closeProfiles := sync.OnceValue(profiles.Close)
	defer func() {
		if cerr := closeProfiles(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	h, err := agent.New(agent.Config{Profiles: profiles, Allow: o.allow, Key: o.key, WaitTimeout: a.timeout, Logger: logger})
	if err != nil {
		return usagef("%v", err)
	}
	srv := agent.NewServer(h, a.timeout, logger)
	srv.ReadHeaderTimeout = o.headerTimeout

	sigctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	fmt.Fprintf(a.stdout, "listening on %s\n", where)
	logger.Info("serving", "profiles", strings.Join(o.allow, ","), "on", where)

	select {
	case err = <-served:
	case <-sigctx.Done():
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.shutdownIn)
		err = srv.Shutdown(sctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			srv.Close()
			err = nil
		}
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	// A rotated refresh token the store did not take is either written
	// now or named, with its journal entry, in the error: exit non-zero.
	h.Close()
	if cerr := closeProfiles(); cerr != nil {
		logger.Error("unpersisted refresh token at shutdown", "error", cerr.Error())
		err = errors.Join(err, cerr)
	}
	return err
}

func (a *app) defaultSocket() (string, error) {
	if d := a.getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "tokencache", "agent.sock"), nil
	}
	d, err := os.UserConfigDir()
	if err != nil {
		return "", usagef("no --socket and no default directory: %v", err)
	}
	return filepath.Join(d, "tokencache", "agent.sock"), nil
}

// readKeyFile reads the agent key from a file only its owner can read.
func readKeyFile(path string) (secret.Secret, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", usagef("--key-file: %v", err)
	}
	if !fi.Mode().IsRegular() {
		return "", usagef("--key-file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", usagef("--key-file %s has mode %v: others could read the key (chmod 600 it)", path, perm)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != uint32(os.Geteuid()) {
		return "", usagef("--key-file %s belongs to user %d, not to this user", path, st.Uid)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", usagef("--key-file: %v", err)
	}
	key := strings.TrimSpace(string(b))
	if len(key) < minKeyLen || strings.ContainsAny(key, " \t\r\n") {
		return "", usagef("--key-file %s must hold one key of at least %d characters, no spaces (head -c 32 /dev/urandom | base64 > FILE)", path, minKeyLen)
	}
	return secret.Secret(key), nil
}
