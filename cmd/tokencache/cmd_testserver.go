package main

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokencache/tokencache/oauthtest"
)

// The clients test-server registers.
const (
	tryClientID       = "try-client"
	tryPublicClientID = "try-public"
)

func (a *app) testServerCmd() *cobra.Command {
	var (
		accessTTL, grace, interval time.Duration
		quiet                      bool
	)
	cmd := &cobra.Command{
		Use:     "test-server",
		Aliases: []string{"oauthtest"},
		Short:   "Run a local OAuth 2.0 server to try tokencache against (rotation and reuse detection on)",
		Long: `Run the project's test authorization server (package oauthtest) on a
loopback port, for trying tokencache without an account anywhere:
init, token, refresh, revoke, login and login --device against something
that behaves like a real provider.

It prints its endpoints, a confidential client (id and secret), a refresh
token of a fresh grant for it, a public client (no secret) for login and
login --device, and command lines to paste. Every refresh rotates the
refresh token; presenting a spent one is taken as theft and revokes the
whole grant (RFC 9700 reuse detection), as strict providers do.

Device codes are approved on the verification page it prints, or with
  curl -d user_code=CODE -d action=approve VERIFICATION_URL

Token requests are logged on stderr (never a token or a secret) unless
--quiet. The secret and refresh token it prints are throwaway values of
this process: everything lives in its memory and is gone when it stops
(Ctrl-C). Not for production use.`,
		Example: `  tokencache test-server
  tokencache test-server --access-ttl 1m --reuse-grace 10s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Not a.runE: it runs until stopped, not for --timeout.
			a.started = true
			if accessTTL < time.Second || interval < time.Second {
				return usagef("--access-ttl and --device-interval must be at least 1s")
			}
			opts := oauthtest.Options{AccessTTL: accessTTL, Rotate: true, ReuseGrace: grace}
			if !quiet {
				opts.Logger = slog.New(slog.NewTextHandler(a.stderr, nil))
			}
			srv := oauthtest.NewServer(opts)
			defer srv.Close()
			clientSecret := rand.Text()
			srv.AddClient(tryClientID, clientSecret)
			srv.AddClient(tryPublicClientID, "")
			srv.SetDeviceFlow(interval, 0)
			a.printTestServer(srv, clientSecret, srv.IssueRefreshToken(tryClientID), accessTTL, grace)

			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			<-ctx.Done()
			fmt.Fprintln(a.stderr, "tokencache test-server: stopped; its tokens are gone")
			return nil
		},
	}
	f := cmd.Flags()
	f.DurationVar(&accessTTL, "access-ttl", 5*time.Minute, "lifetime of the access tokens it issues")
	f.DurationVar(&grace, "reuse-grace", 0, "how long a rotated refresh token stays usable (0: reuse at once revokes the grant)")
	f.DurationVar(&interval, "device-interval", 2*time.Second, "polling interval it asks of login --device")
	f.BoolVar(&quiet, "quiet", false, "do not log token requests on stderr")
	return cmd
}

// printTestServer writes what a newcomer needs, as "name: value" lines
// and command lines to paste into another shell.
func (a *app) printTestServer(srv *oauthtest.Server, clientSecret, refreshToken string, accessTTL, grace time.Duration) {
	store := a.storeURL
	if store == "" {
		// Not the default store, which may hold real profiles; one file
		// per server, since a profile seeded from a previous server holds
		// a refresh token this one does not know.
		u, _ := url.Parse(srv.URL)
		store = (&url.URL{Scheme: "file", Path: filepath.Join(os.TempDir(), "tokencache-try-"+u.Port()+".json")}).String()
	}
	w := a.stdout
	fmt.Fprintf(w, "tokencache test-server: an OAuth 2.0 server in this process's memory (Ctrl-C stops it)\n\n")
	for _, kv := range [][2]string{
		{"token URL", srv.TokenURL()},
		{"revocation URL", srv.RevokeURL()},
		{"authorization URL", srv.AuthorizeURL()},
		{"device URL", srv.DeviceAuthorizationURL()},
		{"verification page", srv.VerificationURL()},
		{"client id", tryClientID},
		{"client secret", clientSecret},
		{"refresh token", refreshToken},
		{"public client id", tryPublicClientID + "  (no secret: for login and login --device)"},
	} {
		fmt.Fprintf(w, "  %-18s %s\n", kv[0]+":", kv[1])
	}
	reuse := "presenting a spent one revokes the whole grant (reuse detection)"
	if grace > 0 {
		reuse = fmt.Sprintf("a spent one still works for %s, then revokes the whole grant (reuse detection)", grace)
	}
	fmt.Fprintf(w, "\nAccess tokens live %s. Every refresh rotates the refresh token; %s.\n\n", accessTTL, reuse)
	fmt.Fprintf(w, "Try, in another shell (secrets go in the environment, never in argv):\n\n")
	fmt.Fprintf(w, "  export TOKENCACHE_STORE=%s\n", shellWord(store))
	fmt.Fprintf(w, "  PAN_CLIENT_SECRET=%s PAN_REFRESH_TOKEN=%s tokencache init try --client-id %s --token-url %s --revoke-url %s\n",
		shellWord(clientSecret), shellWord(refreshToken), tryClientID, shellWord(srv.TokenURL()), shellWord(srv.RevokeURL()))
	fmt.Fprintf(w, "  tokencache token try\n")
	fmt.Fprintf(w, "  tokencache refresh try\n")
	fmt.Fprintf(w, "  tokencache show try\n")
	fmt.Fprintf(w, "  tokencache login --device try-device --client-id %s --token-url %s --device-url %s\n",
		tryPublicClientID, shellWord(srv.TokenURL()), shellWord(srv.DeviceAuthorizationURL()))
	fmt.Fprintf(w, "      (then approve its code at %s)\n", srv.VerificationURL())
	fmt.Fprintf(w, "  tokencache login try-browser --client-id %s --token-url %s --authorize-url %s\n\n",
		tryPublicClientID, shellWord(srv.TokenURL()), shellWord(srv.AuthorizeURL()))
}

// shellWord quotes s for a POSIX shell when it needs it.
func shellWord(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@%+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
