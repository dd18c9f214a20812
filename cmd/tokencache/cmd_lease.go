package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokencache/tokencache/internal/httpsafe"
	"github.com/tokencache/tokencache/storage"
)

func (a *app) leaseCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lease",
		Short: "Show or clear the profile's refresh lease",
		Long: `A process refreshing the profile's token holds its refresh lease; the others
wait for its result, at most until the lease ends. A holder that died
(killed mid-refresh, a lost machine) makes them wait for the whole lease.

"tokencache lease" shows who holds the lease and until when;
"tokencache lease clear" removes a lease you know is dead, so that the
next "tokencache token" refreshes at once. Clearing the lease of a
refresher that is alive lets a second refresh run beside it: with
rotating refresh tokens, one of the two may spend a token the other
already rotated.`,
		Args: cobra.NoArgs,
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, _ []string) error {
			st, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			rec, _, err := st.Load(ctx, a.profile)
			if err != nil {
				return err
			}
			if rec.Lease == nil {
				fmt.Fprintf(a.stdout, "profile %q: no refresh lease\n", a.profile)
				return nil
			}
			fmt.Fprintf(a.stdout, "profile %q: refresh lease held by %s until %s\n", a.profile,
				httpsafe.Printable(describeOwner(rec.Lease.Owner)), rec.Lease.Until.UTC().Format(time.RFC3339))
			return nil
		}),
	}
	cmd.AddCommand(profileArg(&cobra.Command{
		Use:     "clear",
		Aliases: []string{"unlock"},
		Short:   "Remove a refresh lease whose holder is dead",
		Long: `Remove the profile's refresh lease, for a holder you know is dead. The lease
is removed only if it is still the one read: a lease that changed
meanwhile (its holder finished, or another took it) is left alone and the
command fails, so that look again.`,
		Args: cobra.NoArgs,
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, _ []string) error {
			return a.clearLease(ctx)
		}),
	}))
	return profileArg(cmd)
}

// clearLease goes through storage.Store like every writer: Update keeps
// a stored lease by design, so the record is read and replaced at its
// revision with the lease removed; a conflict means it changed.
func (a *app) clearLease(ctx context.Context) error {
	st, err := a.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	rec, rev, err := st.Load(ctx, a.profile)
	if err != nil {
		return err
	}
	if rec.Lease == nil {
		fmt.Fprintf(a.stdout, "profile %q: no refresh lease\n", a.profile)
		return nil
	}
	next := rec.Clone()
	next.Lease = nil
	if _, err := st.Replace(ctx, rec, rev, next); errors.Is(err, storage.ErrConflict) {
		return &conflictError{`the lease changed meanwhile (its holder finished or another took it); nothing was cleared: look again with "tokencache lease"`}
	} else if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "profile %q: cleared the refresh lease of %s\n", a.profile, httpsafe.Printable(describeOwner(rec.Lease.Owner)))
	return nil
}

// conflictError is a conflict the user resolves by looking again (exit
// 11): the store changed under the command, or the target exists.
type conflictError struct{ msg string }

func (e *conflictError) Error() string { return e.msg }
func (e *conflictError) Unwrap() error { return storage.ErrConflict }
