package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/internal/backoff"
	"github.com/tokencache/tokencache/internal/httpsafe"
)

func (a *app) tokenCmd() *cobra.Command {
	var asJSON bool
	var format string
	var minValid time.Duration
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Print a valid access token",
		Long: `Print a valid access token of the profile and nothing else on stdout.

A valid token in the store is printed as is. Otherwise one process among
all those sharing the store takes the refresh lease and calls the token
endpoint, the others wait for its result, so any number of concurrent
"tokencache token" runs cost one refresh. A rotated refresh token is stored
before the new access token is printed.

--format chooses what is printed:
  value    the bare token (default)
  header   the HTTP header line: "Authorization: Bearer <token>"
  json     {"access_token", "token_type", "expiry", "expires_in"}
  env      shell assignments: TOKENCACHE_ACCESS_TOKEN, TOKENCACHE_TOKEN_TYPE,
           TOKENCACHE_TOKEN_EXPIRY (RFC 3339, when known); eval "$(tokencache token --format env)"
  k8s      a kubectl/client-go ExecCredential (client.authentication.k8s.io/v1)
           with expirationTimestamp, for a kubeconfig exec credential plugin:
           every kubectl sharing the store shares one refresh

--min-valid asks for a token valid at least that much longer (refreshing
earlier if need be); the default is 30s.

On failure stdout is empty, stderr has one line and the exit code says why.`,
		Example: `  curl -H "Authorization: Bearer $(tokencache token)" https://api.example/v1/things
  curl -H "$(tokencache token --format header)" https://api.example/v1/things
  tokencache token work --min-valid 10m --format json`,
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
			if asJSON {
				if cmd.Flag("format").Changed && format != "json" {
					return usagef("--json and --format %s disagree", format)
				}
				format = "json"
			}
			if !slices.Contains(tokenFormats, format) {
				return usagef("--format must be one of %s, not %q", strings.Join(tokenFormats, ", "), format)
			}
			if cmd.Flag("min-valid").Changed {
				if minValid < 0 {
					return usagef("--min-valid must not be negative")
				}
				a.tune.skew = minValid
			}
			return a.withCredentials(ctx, func(c *credentials.Credentials) error {
				tok, err := c.Token(ctx)
				if err != nil {
					return err
				}
				// The token is printed only once the refresh token it
				// came with is in the store, not merely in the journal:
				// wait for a store that is down, within --timeout.
				if err := flushWithin(ctx, c); err != nil {
					return err
				}
				if cmd.Flag("min-valid").Changed {
					a.warnShortToken(tok, minValid)
				}
				return printToken(a.stdout, tok, format)
			})
		}),
	}
	cmd.Flags().StringVar(&format, "format", "value", "what to print: "+strings.Join(tokenFormats, ", "))
	cmd.Flags().BoolVar(&asJSON, "json", false, `same as --format json`)
	cmd.Flags().DurationVar(&minValid, "min-valid", 30*time.Second, "hand out only a token valid at least this much longer")
	return cmd
}

// tokenFormats are token's --format values.
var tokenFormats = []string{"value", "header", "json", "env", "k8s"}

// tokenJSON is the --json form of a token. The access token is revealed:
// printing it is what the command is for.
type tokenJSON struct {
	AccessToken string     `json:"access_token"`
	TokenType   string     `json:"token_type"`
	Expiry      *time.Time `json:"expiry,omitempty"`
	ExpiresIn   *int64     `json:"expires_in,omitempty"`
}

func printToken(w io.Writer, tok *credentials.Token, format string) error {
	// A bearer token is printable ASCII (RFC 6750's b64token); one with
	// control characters is a server writing to the terminal, or to the
	// shell line that embeds $(tokencache token), and no HTTP client
	// would send it anyway.
	at := tok.AccessToken.Reveal()
	if httpsafe.Printable(at) != at {
		return errors.New("the token endpoint returned an access token with control characters; not printing it")
	}
	typ := tok.TokenType
	if typ == "" || strings.EqualFold(typ, "bearer") {
		typ = "Bearer"
	}
	// env output is read by a shell (eval): values are single-quoted,
	// so only a quote of their own could break out.
	if format == "env" && (strings.Contains(at, "'") || strings.Contains(typ, "'") || httpsafe.Printable(typ) != typ) {
		return errors.New("the access token or its type contains a quote or control characters; not printing it as --format env")
	}
	var exp *time.Time
	if !tok.Expiry.IsZero() {
		e := tok.Expiry.UTC()
		exp = &e
	}
	switch format {
	case "header":
		_, err := fmt.Fprintln(w, "Authorization: "+tok.AuthorizationHeader())
		return err
	case "env":
		fmt.Fprintf(w, "TOKENCACHE_ACCESS_TOKEN='%s'\nTOKENCACHE_TOKEN_TYPE='%s'\n", at, typ)
		if exp != nil {
			fmt.Fprintf(w, "TOKENCACHE_TOKEN_EXPIRY='%s'\n", exp.Format(time.RFC3339))
		}
		return nil
	case "json":
		v := tokenJSON{AccessToken: at, TokenType: typ}
		if exp != nil {
			in := int64(time.Until(*exp).Seconds())
			v.Expiry, v.ExpiresIn = exp, &in
		}
		return writeJSON(w, v)
	case "k8s":
		return writeJSON(w, execCredential(at, exp))
	}
	_, err := fmt.Fprintln(w, at)
	return err
}

// execCredentialJSON is client-go's ExecCredential, as an exec credential
// plugin prints it (k8s.io/client-go/pkg/apis/clientauthentication/v1).
type execCredentialJSON struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Status     struct {
		Token               string `json:"token"`
		ExpirationTimestamp string `json:"expirationTimestamp,omitempty"`
	} `json:"status"`
}

func execCredential(token string, exp *time.Time) execCredentialJSON {
	v := execCredentialJSON{APIVersion: "client.authentication.k8s.io/v1", Kind: "ExecCredential"}
	v.Status.Token = token
	if exp != nil {
		v.Status.ExpirationTimestamp = exp.Format(time.RFC3339)
	}
	return v
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(jsonSafe{w})
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// flushWithin writes a rotated refresh token that a store outage held back,
// retrying until ctx ends; the error then names the recovery journal entry
// that keeps it.
func flushWithin(ctx context.Context, c *credentials.Credentials) error {
	for attempt := 0; ; attempt++ {
		err := c.Flush(context.WithoutCancel(ctx))
		if err == nil || backoff.Sleep(ctx, backoff.Exponential(100*time.Millisecond, min(attempt, 4))) != nil {
			return err
		}
	}
}

// warnShortToken says when even a fresh token is valid for less than
// --min-valid asked: the server's tokens do not live that long.
func (a *app) warnShortToken(tok *credentials.Token, minValid time.Duration) {
	if tok.Expiry.IsZero() {
		return
	}
	if left := time.Until(tok.Expiry); left < minValid {
		fmt.Fprintf(a.stderr, "note: the access token is valid for %s, less than --min-valid %s: the server issues shorter-lived tokens\n", left.Round(time.Second), minValid)
	}
}
