package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tokencache/tokencache/storage"
)

func (a *app) rmCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rm",
		Short: "Remove the profile from the store",
		Long: `Remove the profile from the store. Its tokens stay valid at the server:
run "tokencache revoke" first to end them.`,
		Args: cobra.NoArgs,
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, _ []string) error {
			st, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			// Deleting a missing key is not an error for the store, but a
			// mistyped profile name should not pass silently. A corrupt
			// record may go: removing it is how an operator repairs it.
			if _, _, err := st.Load(ctx, a.profile); err != nil && !errors.Is(err, storage.ErrCorrupt) {
				return err
			}
			if err := st.Delete(ctx, a.profile); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "profile %q removed from %s\n", a.profile, displayURL(a.storeURL))
			return nil
		}),
	}
}
