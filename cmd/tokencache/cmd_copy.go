package main

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/spf13/cobra"

	"github.com/tokencache/tokencache/storage"
)

func (a *app) copyCmd() *cobra.Command {
	var to string
	var force bool
	cmd := &cobra.Command{
		Use:   "copy --to URL",
		Short: "Copy profiles to another store",
		Long: `Copy every profile of the store, or only the one named with --profile on
the command line, to the store --to names: to migrate from pancloud's
credentials.json to SQLite or Redis, say.

Profiles that exist in the destination are left alone and reported unless
--force replaces them; nothing is written unless every profile can be.

Afterwards both stores hold the same refresh token. With a server that
rotates refresh tokens, let only one store be used, or the other's next
refresh presents a rotated token and the server revokes the grant.`,
		Example: `  tokencache copy --to sqlite:///var/lib/app/tokens.db
  tokencache --profile prod copy --to redis://cache:6379/0`,
		Args: cobra.NoArgs,
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
			if to == "" {
				return usagef("copy: --to URL is required")
			}
			src, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			defer src.Close()
			var names []string
			if cmd.Flag("profile").Changed {
				names = []string{a.profile}
			} else if names, err = src.List(ctx); err != nil {
				return err
			}
			slices.Sort(names)
			recs := make([]*storage.Record, 0, len(names))
			for _, n := range names {
				r, _, err := src.Load(ctx, n)
				if err != nil {
					a.profile = n // so that the error line names it
					return err
				}
				r.Lease = nil // a lease means nothing in another store
				recs = append(recs, r)
			}

			dst, err := storage.Open(ctx, to)
			if err != nil {
				return fmt.Errorf("--to: %w", err)
			}
			defer dst.Close()
			dstName := storage.Redact(to)
			if !force {
				var exist []string
				for _, r := range recs {
					_, _, err := dst.Load(ctx, r.Profile)
					switch {
					case err == nil:
						exist = append(exist, r.Profile)
					case !errors.Is(err, storage.ErrNotFound):
						return fmt.Errorf("%s: %w", dstName, err)
					}
				}
				if len(exist) > 0 {
					return fmt.Errorf("copy: %s already has profile(s) %q; nothing copied (--force replaces them)", dstName, exist)
				}
			}
			for _, r := range recs {
				var err error
				if force {
					_, _, err = dst.Update(ctx, r.Profile, func(cur *storage.Record) error {
						return copyOver(cur, r)
					})
				} else {
					_, err = dst.Replace(ctx, nil, "", r)
				}
				if err != nil {
					if errors.Is(err, storage.ErrConflict) {
						return fmt.Errorf("copy: profile %q appeared in %s meanwhile; copy stopped there", r.Profile, dstName)
					}
					if errors.Is(err, storage.ErrLineage) {
						return fmt.Errorf("copy: profile %q: %s holds a newer refresh token of the same grant, or a later grant; copying would replay a spent one: copy stopped there", r.Profile, dstName)
					}
					return fmt.Errorf("copy: profile %q to %s: %w", r.Profile, dstName, err)
				}
				fmt.Fprintf(a.stdout, "copied %q to %s\n", r.Profile, dstName)
			}
			if len(recs) == 0 {
				fmt.Fprintf(a.stdout, "no profiles in %s\n", storage.Redact(a.storeURL))
			} else {
				fmt.Fprintln(a.stderr, "note: both stores now hold the same refresh tokens; with rotation, use only one of them")
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&to, "to", "", "destination store URL")
	cmd.Flags().BoolVar(&force, "force", false, "replace profiles that exist in the destination")
	return cmd
}

// copyOver replaces dst's contents with src's under the lineage rule: a
// record that carries lineage keeps it (so the store refuses an older token
// of the same grant), and one without (pancloud's) is taken as a seed,
// refused when the destination has held it before.
func copyOver(dst, src *storage.Record) error {
	legacy := src.Lineage.Grant == "" && src.RefreshToken != dst.RefreshToken
	if legacy && dst.HasSeen(src.RefreshToken.Reveal()) {
		return storage.Wrap(storage.ErrLineage, "copy: the destination has held this refresh token before", nil)
	}
	lin, rt := dst.Lineage, dst.RefreshToken
	*dst = *src.Clone()
	if legacy {
		dst.Lineage, dst.RefreshToken = lin, rt
		dst.Seed(src.RefreshToken.Reveal())
	}
	return nil
}
