package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tokencache/tokencache/credentials"
)

func (a *app) revokeCmd() *cobra.Command {
	var revokeURL string
	cmd := &cobra.Command{
		Use:   "revoke",
		Short: "Revoke the profile's tokens at the server and drop them from the store",
		Long: `Revoke the refresh and access tokens at the server (RFC 7009, or pancloud's
RevokeToken for --flavor pancloud profiles), then remove them from the
profile. The client id and secret stay, so "tokencache login" can
authorize again.`,
		Args: cobra.NoArgs,
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, _ []string) error {
			if err := checkEndpointURL("--revoke-url", revokeURL); err != nil {
				return err
			}
			return a.withCredentials(ctx, func(c *credentials.Credentials) error {
				rec, _, err := c.Store().Load(ctx, a.profile)
				if err != nil {
					return err
				}
				u := revokeURL
				if u == "" {
					u = extraString(rec, extraRevokeURL)
				}
				if u == "" && rec.Flavor != credentials.FlavorPancloud {
					return usagef("revoke: profile %q has no revocation URL: give --revoke-url (init --revoke-url remembers it)", a.profile)
				}
				if err := c.Revoke(ctx, u); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "profile %q: tokens revoked and removed from the store\n", a.profile)
				return nil
			})
		}),
	}
	cmd.Flags().StringVar(&revokeURL, "revoke-url", "", "revocation endpoint (RFC 7009), an http(s) URL; default: the one init remembered")
	return cmd
}
