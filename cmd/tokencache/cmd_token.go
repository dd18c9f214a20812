package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/internal/backoff"
	"github.com/tokencache/tokencache/internal/httpsafe"
)

func (a *app) tokenCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Print a valid access token",
		Long: `Print a valid access token of the profile and nothing else on stdout.

A valid token in the store is printed as is. Otherwise one process among
all those sharing the store takes the refresh lease and calls the token
endpoint, the others wait for its result, so any number of concurrent
"tokencache token" runs cost one refresh. A rotated refresh token is stored
before the new access token is printed.

On failure stdout is empty, stderr has one line and the exit code says why.`,
		Example: `  curl -H "Authorization: Bearer $(tokencache token)" https://api.example/v1/things`,
		Args:    cobra.NoArgs,
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, _ []string) error {
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
				return printToken(a.stdout, tok, asJSON)
			})
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"access_token","token_type","expiry"} instead of the bare token`)
	return cmd
}

// tokenJSON is the --json form of a token. The access token is revealed:
// printing it is what the command is for.
type tokenJSON struct {
	AccessToken string     `json:"access_token"`
	TokenType   string     `json:"token_type"`
	Expiry      *time.Time `json:"expiry,omitempty"`
	ExpiresIn   *int64     `json:"expires_in,omitempty"`
}

func printToken(w io.Writer, tok *credentials.Token, asJSON bool) error {
	// A bearer token is printable ASCII (RFC 6750's b64token); one with
	// control characters is a server writing to the terminal, or to the
	// shell line that embeds $(tokencache token), and no HTTP client
	// would send it anyway.
	if at := tok.AccessToken.Reveal(); httpsafe.Printable(at) != at {
		return errors.New("the token endpoint returned an access token with control characters; not printing it")
	}
	if !asJSON {
		_, err := fmt.Fprintln(w, tok.AccessToken.Reveal())
		return err
	}
	v := tokenJSON{AccessToken: tok.AccessToken.Reveal(), TokenType: tok.TokenType}
	if v.TokenType == "" {
		v.TokenType = "Bearer"
	}
	if !tok.Expiry.IsZero() {
		exp := tok.Expiry.UTC()
		in := int64(time.Until(exp).Seconds())
		v.Expiry, v.ExpiresIn = &exp, &in
	}
	return writeJSON(w, v)
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
