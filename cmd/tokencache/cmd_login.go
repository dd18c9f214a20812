package main

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"html"
	"net"
	"net/http"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/internal/httpsafe"
	"github.com/tokencache/tokencache/pancloud"
)

func (a *app) loginCmd() *cobra.Command {
	var in profileInput
	var noBrowser, force, device bool
	var port int
	var deviceURL string
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Authorize with the authorization code flow (PKCE, loopback redirect) or, with --device, the device flow",
		Long: `Obtain a refresh token for the profile with the authorization code flow
(RFC 6749 section 4.1) and PKCE (RFC 7636, S256), redirecting to a listener
on 127.0.0.1 (RFC 8252 section 7.3):

  1. prints the authorization URL to open (and opens a browser unless --no-browser),
  2. waits for the redirect and checks its state,
  3. exchanges the code and stores the tokens in the profile.

The profile needs a client id and token URL (from init, or the flags here);
a confidential client's secret comes from the profile or PAN_CLIENT_SECRET
(never argv: see init's --client-secret-file). The authorization endpoint
is remembered in the profile. Endpoint URLs must be absolute http:// or
https:// URLs; plain http:// to a host other than loopback gets a warning.

The browser is started with xdg-open (open on macOS), or with the program
TOKENCACHE_BROWSER names, given the URL as its one argument. It runs with
a reduced environment: PATH, HOME, USER, LOGNAME, SHELL, TMPDIR, DISPLAY,
WAYLAND_DISPLAY, XAUTHORITY, DBUS_SESSION_BUS_ADDRESS, BROWSER, LANG,
LANGUAGE, LC_* and XDG_* (and what Windows needs to start a program), never
PAN_* secrets or TOKENCACHE_STORE.
` + deviceHelp,
		Example: `  tokencache login --authorize-url https://idp.example/oauth2/authorize \
      --token-url https://idp.example/oauth2/token --client-id app --scope offline_access
  tokencache login --device --device-url https://idp.example/oauth2/device/code \
      --token-url https://idp.example/oauth2/token --client-id app`,
		Args: cobra.NoArgs,
		PreRun: func(cmd *cobra.Command, _ []string) {
			// A person has to act: give them longer than a token request.
			if !cmd.Flag("timeout").Changed {
				a.timeout = 5 * time.Minute
				if device {
					a.timeout = deviceTimeout
				}
			}
		},
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
			if device {
				if err := checkDeviceFlags(cmd, deviceURL); err != nil {
					return err
				}
			} else if deviceURL != "" {
				return usagef("--device-url is for login --device")
			}
			if err := checkEndpoints(&in); err != nil {
				return err
			}
			setSecretIfEmpty(&in.clientSecret, a.getenv(pancloud.EnvClientSecret))
			if !in.empty() {
				// A login is a new grant: it may change the client.
				if _, _, err := a.saveProfile(ctx, in, force); err != nil {
					return err
				}
			}
			return a.withCredentials(ctx, func(c *credentials.Credentials) error {
				if device {
					return a.loginDevice(ctx, c, deviceURL)
				}
				return a.login(ctx, c, noBrowser, port)
			})
		}),
	}
	f := cmd.Flags()
	f.StringVar(&in.authorizeURL, "authorize-url", "", "authorization endpoint (default: the one stored in the profile)")
	f.StringVar(&in.tokenURL, "token-url", "", "token endpoint, stored in the profile")
	f.StringVar(&in.clientID, "client-id", "", "client id, stored in the profile")
	f.StringSliceVar(&in.scopes, "scope", nil, "scopes to request, stored in the profile")
	f.BoolVar(&noBrowser, "no-browser", false, "only print the URL, do not start a browser")
	f.BoolVar(&force, "force", false, "change the client of a profile that holds another client's refresh token")
	f.IntVar(&port, "port", 0, "port of the redirect listener on 127.0.0.1 (default: any free port)")
	f.BoolVar(&device, "device", false, "use the device authorization grant (RFC 8628): for machines without a browser")
	f.StringVar(&deviceURL, "device-url", "", "device authorization endpoint for --device (default: the one stored in the profile)")
	return cmd
}

// callback is what the redirect brought.
type callback struct {
	code string
	err  error
}

func (a *app) login(ctx context.Context, c *credentials.Credentials, noBrowser bool, port int) error {
	rec, _, err := c.Store().Load(ctx, a.profile)
	if err != nil {
		return err
	}
	authorizeURL := extraString(rec, extraAuthorizeURL)
	if authorizeURL == "" {
		return usagef("login: profile %q has no authorization URL: give --authorize-url", a.profile)
	}
	var missing []string
	if rec.ClientID == "" {
		missing = append(missing, "client_id")
	}
	if rec.TokenURL == "" {
		missing = append(missing, "token_url")
	}
	if len(missing) > 0 {
		return &credentials.PartialCredentialsError{Profile: a.profile, Missing: missing}
	}
	a.warnPlainHTTP(rec.TokenURL, "", authorizeURL)
	// Loopback only: the code must not be reachable from the network.
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("login: redirect listener: %w", err)
	}
	redirectURI := fmt.Sprintf("http://%s/callback", ln.Addr())
	req, err := credentials.NewAuthRequest(authorizeURL, rec.ClientID, redirectURI, rec.Scopes...)
	if err != nil {
		ln.Close()
		return usagef("login: %v", err)
	}

	got := make(chan callback, 1)
	outcome := make(chan error, 1)
	srv := &http.Server{Handler: a.callbackHandler(req.State, got, outcome), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer func() {
		// Shutdown, not Close: the browser is still waiting for the page
		// that says how the exchange went.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()

	fmt.Fprintf(a.stderr, "Open this URL in a browser to authorize profile %q:\n\n  %s\n\nWaiting for the redirect to %s ...\n", a.profile, httpsafe.Printable(req.URL), redirectURI)
	if !noBrowser {
		a.openBrowser(req.URL)
	}
	var cb callback
	select {
	case cb = <-got:
	case <-ctx.Done():
		return fmt.Errorf("login: no redirect arrived: %w", ctx.Err())
	}
	if cb.err != nil {
		outcome <- cb.err
		return cb.err
	}
	tok, err := c.Exchange(ctx, cb.code, req.Verifier, redirectURI)
	outcome <- err
	if err != nil {
		return fmt.Errorf("login: exchanging the code: %w", err)
	}
	until := "with unknown expiry"
	if !tok.Expiry.IsZero() {
		until = "valid until " + tok.Expiry.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(a.stdout, "profile %q authorized: access token %s\n", a.profile, until)
	return nil
}

// callbackHandler takes the first redirect to /callback, hands it to login
// and shows the browser how the exchange went.
func (a *app) callbackHandler(state string, got chan<- callback, outcome <-chan error) http.Handler {
	taken := make(chan struct{}, 1)
	var mu sync.Mutex
	strays := 0
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" {
			http.NotFound(w, r)
			return
		}
		// One redirect with another state is tolerated: a stale tab, or
		// a second login started from the same browser, is not an attack
		// worth giving up the login for. Its code is never exchanged; a
		// second such redirect ends the login.
		// An error redirect still ends the login: the user may have
		// denied it, and should not wait for the timeout.
		if q := r.URL.Query(); q.Get("error") == "" && subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(state)) != 1 {
			mu.Lock()
			strays++
			tolerate := strays == 1
			mu.Unlock()
			if tolerate {
				fmt.Fprintln(a.stderr, "tokencache: ignored a redirect whose state is not this login's (a stale tab?); still waiting")
				http.Error(w, "tokencache: this redirect is not the answer to the login in progress; it was ignored", http.StatusBadRequest)
				return
			}
		}
		select {
		case taken <- struct{}{}:
		default:
			http.Error(w, "this login already finished", http.StatusGone)
			return
		}
		q := r.URL.Query()
		var cb callback
		switch {
		case q.Get("error") != "":
			cb.err = fmt.Errorf("login: the authorization server answered %s: %s", q.Get("error"), q.Get("error_description"))
		// A redirect without our state is not the answer to our request
		// (CSRF, or a stale tab): never exchange its code.
		case subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(state)) != 1:
			cb.err = errors.New("login: the redirect's state does not match the request; not exchanging its code")
		case q.Get("code") == "":
			cb.err = errors.New("login: the redirect carries no code")
		default:
			cb.code = q.Get("code")
		}
		got <- cb
		var err error
		select {
		case err = <-outcome:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, "<p>tokencache: authorization failed: %s</p>", html.EscapeString(oneLine(err.Error())))
			return
		}
		fmt.Fprint(w, "<p>tokencache: authorized. You can close this window.</p>")
	})
}

// openBrowser is best effort: the URL is printed anyway. The opener gets
// the URL and a scrubbed environment (openerEnv): it and the browser it
// starts are other programs, which must not inherit the client secret or
// the store URL from ours.
func (a *app) openBrowser(u string) {
	var cmd *exec.Cmd
	switch prog := a.getenv("TOKENCACHE_BROWSER"); {
	case prog != "":
		cmd = exec.Command(prog, u)
	case runtime.GOOS == "darwin":
		cmd = exec.Command("open", u)
	case runtime.GOOS == "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", u)
	default:
		cmd = exec.Command("xdg-open", u)
	}
	var environ []string
	if a.environ != nil {
		environ = a.environ()
	}
	// A non-nil empty Env: a nil one would mean "inherit everything".
	cmd.Env = append([]string{}, openerEnv(environ)...)
	if cmd.Start() == nil {
		go cmd.Wait()
	}
}
