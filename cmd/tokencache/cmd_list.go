package main

import (
	"context"
	"fmt"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokencache/tokencache/internal/httpsafe"
	"github.com/tokencache/tokencache/storage"
)

func (a *app) listCmd() *cobra.Command {
	var asJSON, long bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the profiles in the store",
		Long: `List the profile names, one a line; --long adds the client and token state,
--json all of show's fields. As in show, secrets are masked, endpoint URLs
redacted and control characters escaped.`,
		Args: cobra.NoArgs,
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, _ []string) error {
			st, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			names, err := st.List(ctx)
			if err != nil {
				return err
			}
			slices.Sort(names)
			if !asJSON && !long {
				for _, n := range names {
					fmt.Fprintln(a.stdout, httpsafe.Printable(n))
				}
				return nil
			}
			views := make([]profileView, 0, len(names))
			now := time.Now()
			for _, n := range names {
				views = append(views, loadView(ctx, st, n, now))
			}
			if asJSON {
				return writeJSON(a.stdout, views)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "PROFILE\tCLIENT ID\tACCESS TOKEN\tTOKEN URL")
			for _, v := range views {
				state := v.accessStatus(now)
				if v.Error != "" {
					state = "error: " + v.Error
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", httpsafe.Printable(v.Profile), httpsafe.Printable(v.ClientID), httpsafe.Printable(state), httpsafe.Printable(v.TokenURL))
			}
			return tw.Flush()
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON: an array of profiles, secrets masked")
	cmd.Flags().BoolVarP(&long, "long", "l", false, "one line per profile with client and token state")
	return cmd
}

// loadView summarizes one profile; a record that cannot be read is listed
// with its error rather than failing the whole listing.
func loadView(ctx context.Context, st *storage.Store, name string, now time.Time) profileView {
	rec, _, err := st.Load(ctx, name)
	if err != nil {
		return profileView{Profile: name, Error: redactURLs(oneLine(err.Error()))}
	}
	return summarize(rec, now)
}
