package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokencache/tokencache/credentials"
)

func (a *app) refreshCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "refresh",
		Short: "Refresh the access token now, even if the stored one is still valid",
		Long: `Refresh the access token now, through the same lease as token: if another
process is refreshing the profile at the same moment, its result is taken
instead of calling the endpoint twice.`,
		Args: cobra.NoArgs,
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, _ []string) error {
			return a.withCredentials(ctx, func(c *credentials.Credentials) error {
				before, _, err := c.Store().Load(ctx, a.profile)
				if err != nil {
					return err
				}
				// Refresh(ctx, nil) adopts a valid stored token on a fresh
				// Credentials (see the report on credentials.Refresh), so
				// name the stored token as the stale one explicitly. Token
				// either returns it (valid) or already refreshed it.
				tok, err := c.Token(ctx)
				if err == nil && before.AccessToken != "" && tok.AccessToken == before.AccessToken {
					tok, err = c.Refresh(ctx, tok)
				}
				if err != nil {
					return err
				}
				// As token does: done only once the store has the rotated
				// refresh token.
				if err := flushWithin(ctx, c); err != nil {
					return err
				}
				until := "with unknown expiry"
				if !tok.Expiry.IsZero() {
					until = "valid until " + tok.Expiry.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(a.stdout, "profile %q refreshed: new access token %s\n", a.profile, until)
				return nil
			})
		}),
	}
}
