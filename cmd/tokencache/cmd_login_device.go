package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/internal/httpsafe"
	"github.com/tokencache/tokencache/storage"
)

// extraDeviceURL is the profile's device authorization endpoint, kept so
// that the next "login --device" needs no flag.
const extraDeviceURL = "device_authorization_url"

// deviceTimeout is login --device's default --timeout: device codes
// commonly live 10 to 15 minutes, and the code's own expiry ends the wait
// sooner when it is shorter.
const deviceTimeout = 15 * time.Minute

const deviceHelp = `
With --device it uses the device authorization grant (RFC 8628) instead,
for machines without a browser (a server over SSH, a container):

  1. asks the device authorization endpoint (--device-url, remembered in
     the profile) for a code,
  2. prints on stderr the URL to open on any device and the code to enter
     there (and the URL that carries the code, when the server gives one),
  3. polls the token endpoint at the interval the server asks for (five
     seconds more after each slow_down) until the code is approved, denied
     or expired, or --timeout (default 15m with --device) ends, and stores
     the tokens in the profile.

Public clients (a client id and no secret) work with both flows.`

// checkDeviceFlags refuses the code flow's flags with --device.
func checkDeviceFlags(cmd *cobra.Command, deviceURL string) error {
	if cmd.Flag("port").Changed {
		return usagef("--port is for the redirect of the authorization code flow, not login --device")
	}
	return checkEndpointURL("--device-url", deviceURL)
}

// loginDevice runs the device authorization grant for the profile.
func (a *app) loginDevice(ctx context.Context, c *credentials.Credentials, deviceURL string) error {
	rec, _, err := c.Store().Load(ctx, a.profile)
	if err != nil {
		return err
	}
	given := deviceURL != ""
	if !given {
		deviceURL = extraString(rec, extraDeviceURL)
	}
	if deviceURL == "" {
		return usagef("login --device: profile %q has no device authorization URL: give --device-url", a.profile)
	}
	a.warnPlainHTTP(rec.TokenURL, "", "")
	if w := plainHTTPWarning("device authorization URL", "the client secret and the user code", deviceURL); w != "" {
		fmt.Fprintln(a.stderr, w)
	}
	da, err := c.AuthorizeDevice(ctx, deviceURL)
	if err != nil {
		return fmt.Errorf("login --device: asking for a code: %w", err)
	}
	// Remembered only once it answered as a device authorization endpoint.
	if given && deviceURL != extraString(rec, extraDeviceURL) {
		if err := a.rememberDeviceURL(ctx, c.Store(), deviceURL); err != nil {
			return err
		}
	}

	// The server chose these strings: print them escaped, so that a
	// hostile one cannot write to the terminal.
	fmt.Fprintf(a.stderr, "To authorize profile %q, open this URL on any device:\n\n  %s\n\nand enter the code:\n\n  %s\n\n",
		a.profile, httpsafe.Printable(da.VerificationURI), httpsafe.Printable(da.UserCode))
	if da.VerificationURIComplete != "" {
		fmt.Fprintf(a.stderr, "(or open %s, which carries the code)\n\n", httpsafe.Printable(da.VerificationURIComplete))
	}
	until := ""
	if !da.Expiry.IsZero() {
		until = " (the code expires at " + da.Expiry.UTC().Format(time.RFC3339) + ")"
	}
	fmt.Fprintf(a.stderr, "Waiting for the approval%s ...\n", until)

	tok, err := c.ExchangeDevice(ctx, da)
	switch {
	case err == nil:
	case errors.Is(err, credentials.ErrAccessDenied):
		return fmt.Errorf("login --device: the authorization was denied; nothing was stored: %w", err)
	case errors.Is(err, credentials.ErrDeviceCodeExpired):
		return fmt.Errorf("login --device: the code expired before it was approved; nothing was stored, run login --device again: %w", err)
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		// %v: a person did not act in time; "retry later" (the exit code of
		// a timeout) would not help a script.
		return fmt.Errorf("login --device: the code was not approved within --timeout %s; nothing was stored: %v", a.timeout, err)
	default:
		return fmt.Errorf("login --device: %w", err)
	}
	fmt.Fprintf(a.stdout, "profile %q authorized: access token %s\n", a.profile, validity(tok))
	return nil
}

// rememberDeviceURL keeps the device authorization endpoint in the
// profile; it touches no token.
func (a *app) rememberDeviceURL(ctx context.Context, st *storage.Store, u string) error {
	_, _, err := st.Update(ctx, a.profile, func(r *storage.Record) error {
		return r.SetExtra(extraDeviceURL, u)
	})
	return err
}

// validity says until when a token is valid, for "authorized" lines.
func validity(tok *credentials.Token) string {
	if tok.Expiry.IsZero() {
		return "with unknown expiry"
	}
	return "valid until " + tok.Expiry.UTC().Format(time.RFC3339)
}
