package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
)

func (a *app) copyCmd() *cobra.Command {
	var to, toEnv string
	var force bool
	cmd := &cobra.Command{
		Use:   "copy (--to URL | --to-env NAME)",
		Short: "Copy profiles to another store",
		Long: `Copy every profile of the store, or only the one named with --profile on
the command line, to the store --to names: to migrate from pancloud's
credentials.json to SQLite or Redis, say.

Profiles that exist in the destination are left alone and reported unless
--force replaces them; nothing is written unless every profile can be.

Afterwards both stores hold the same refresh token. With a server that
rotates refresh tokens, let only one store be used, or the other's next
refresh presents a rotated token and the server revokes the grant.

A destination URL with a password in it should not be given in argv, where
other users can see it (ps, /proc): put it in an environment variable and
name that with --to-env, or set TOKENCACHE_COPY_TO, which is used when
neither --to nor --to-env is given.

Copying from a kms+ store to one without kms+ writes the secrets in
plaintext; copy warns on stderr when it does.`,
		Example: `  tokencache copy --to sqlite:///var/lib/app/tokens.db
  tokencache --profile prod copy --to redis://cache:6379/0
  DEST='rediss://:pw@cache:6380/0' tokencache copy --to-env DEST`,
		Args: cobra.NoArgs,
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
			switch {
			case toEnv != "":
				if to = a.getenv(toEnv); to == "" {
					return usagef("copy: --to-env %s: the variable is not set or empty", toEnv)
				}
			case to == "":
				to = a.getenv("TOKENCACHE_COPY_TO")
			}
			if to == "" {
				return usagef("copy: give the destination store URL: --to URL, --to-env NAME, or TOKENCACHE_COPY_TO")
			}
			// Said before anything is read: the decision to copy out of
			// envelope encryption is the user's, and they should make it
			// knowingly, whatever the stores hold.
			if isKMS(a.storeURL) && !isKMS(to) {
				fmt.Fprintf(a.stderr, "warning: copying from an encrypted kms+ store to %s, which will hold the secrets in plaintext (use a kms+ destination to keep them encrypted)\n", displayURL(to))
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
			dstName := displayURL(to)
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
					return &conflictError{fmt.Sprintf("copy: %s already has profile(s) %q; nothing copied (--force replaces them)", dstName, exist)}
				}
			}
			for _, r := range recs {
				var err error
				if force {
					_, _, err = dst.Update(ctx, r.Profile, func(cur *storage.Record) error {
						return copyOver(cur, r)
					})
				} else {
					if r.Lineage.Grant == "" && r.RefreshToken != "" {
						// pancloud's record: name its grant by its token,
						// so that a later copy of the same token is known.
						r.Seed(r.RefreshToken.Reveal())
					}
					_, err = dst.Replace(ctx, nil, "", r)
				}
				if err != nil {
					if errors.Is(err, storage.ErrConflict) {
						return &conflictError{fmt.Sprintf("copy: profile %q appeared in %s meanwhile; copy stopped there", r.Profile, dstName)}
					}
					if errors.Is(err, storage.ErrLineage) {
						return fmt.Errorf("copy: profile %q: %s holds a newer refresh token of the same grant, or a later grant; copying would replay a spent one: copy stopped there", r.Profile, dstName)
					}
					return fmt.Errorf("copy: profile %q to %s: %w", r.Profile, dstName, err)
				}
				fmt.Fprintf(a.stdout, "copied %q to %s\n", r.Profile, dstName)
			}
			if len(recs) == 0 {
				fmt.Fprintf(a.stdout, "no profiles in %s\n", displayURL(a.storeURL))
			} else {
				fmt.Fprintln(a.stderr, "note: both stores now hold the same refresh tokens; with rotation, use only one of them")
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&to, "to", "", "destination store URL (visible in ps: prefer --to-env or TOKENCACHE_COPY_TO when it holds a password)")
	cmd.Flags().StringVar(&toEnv, "to-env", "", "name of an environment variable holding the destination store URL")
	cmd.MarkFlagsMutuallyExclusive("to", "to-env")
	cmd.Flags().BoolVar(&force, "force", false, "replace profiles that exist in the destination")
	return cmd
}

// isKMS reports whether a store URL names the kms envelope wrapper.
func isKMS(storeURL string) bool {
	return strings.HasPrefix(strings.ToLower(storeURL), "kms+")
}

// copyOver replaces dst's contents with src's under the lineage rule: a
// record that carries lineage keeps it (so the store refuses an older token
// of the same grant), and one without (pancloud's) is taken as a seed,
// refused when the destination has held it before.
func copyOver(dst, src *storage.Record) error {
	legacy := src.Lineage.Grant == "" && src.RefreshToken != dst.RefreshToken
	if legacy && dst.HasSeen(src.RefreshToken.Reveal()) {
		return driver.Wrap(storage.ErrLineage, "copy: the destination has held this refresh token before", nil)
	}
	lin, rt := dst.Lineage, dst.RefreshToken
	*dst = *src.Clone()
	if legacy {
		dst.Lineage, dst.RefreshToken = lin, rt
		dst.Seed(src.RefreshToken.Reveal())
	}
	return nil
}
