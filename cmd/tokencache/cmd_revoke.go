package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/pancloud"
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
				if u == "" && rec.Flavor != pancloud.Flavor {
					return usagef("revoke: profile %q has no revocation URL: give --revoke-url (init --revoke-url remembers it)", a.profile)
				}
				a.revoking = true
				if err := c.Revoke(ctx, u); err != nil {
					return distinct(err)
				}
				a.revoking = false
				fmt.Fprintf(a.stdout, "profile %q: tokens revoked and removed from the store\n", a.profile)
				return nil
			})
		}),
	}
	cmd.Flags().StringVar(&revokeURL, "revoke-url", "", "revocation endpoint (RFC 7009), an http(s) URL; default: the one init remembered")
	return cmd
}

// distinct drops repeats from a joined error: revoking the refresh and the
// access token at an endpoint that is down fails twice alike, and the
// user needs to read it once.
func distinct(err error) error {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return err
	}
	var keep []error
	seen := map[string]bool{}
	for _, e := range j.Unwrap() {
		if !seen[e.Error()] {
			seen[e.Error()] = true
			keep = append(keep, e)
		}
	}
	if len(keep) == 1 {
		return keep[0]
	}
	return errors.Join(keep...)
}
