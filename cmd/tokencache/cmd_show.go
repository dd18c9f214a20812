package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokencache/tokencache/internal/httpsafe"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
)

func (a *app) showCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show a profile, secrets masked",
		Long: `Show a profile's fields. Secrets are masked; endpoint URLs are shown with
any password and secret-bearing query parameter masked (as store URLs are),
and control characters in stored strings are escaped (\x1b), so that a
shared store cannot write to your terminal.`,
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
			v := summarize(rec, time.Now())
			if asJSON {
				return writeJSON(a.stdout, v)
			}
			return v.writeText(a.stdout, secret.RedactURL(a.storeURL))
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// profileView is what show and list print. Secrets are secret.Secret,
// which marshals and prints as "*****" (or "" when unset), and endpoint
// URLs are redacted by summarize: the view can never reveal one, whatever
// prints it. Its strings are raw otherwise; writeText escapes control
// characters and JSON escapes them itself (see jsonSafe).
type profileView struct {
	Profile      string        `json:"profile"`
	TokenURL     string        `json:"token_url,omitempty"`
	Flavor       string        `json:"flavor,omitempty"`
	ClientID     string        `json:"client_id,omitempty"`
	ClientSecret secret.Secret `json:"client_secret,omitempty"`
	RefreshToken secret.Secret `json:"refresh_token,omitempty"`
	AccessToken  secret.Secret `json:"access_token,omitempty"`
	TokenType    string        `json:"token_type,omitempty"`
	Expiry       *time.Time    `json:"expiry,omitempty"`
	Valid        bool          `json:"valid"` // the access token is unexpired (skew ignored)
	Scopes       []string      `json:"scopes,omitempty"`
	RevokeURL    string        `json:"revoke_url,omitempty"`
	AuthorizeURL string        `json:"authorize_url,omitempty"`
	Lease        *leaseView    `json:"lease,omitempty"`
	UpdatedAt    *time.Time    `json:"updated_at,omitempty"`
	Error        string        `json:"error,omitempty"` // list: the record could not be read
}

type leaseView struct {
	Owner string        `json:"owner"`
	Until time.Time     `json:"until"` // on the holder's clock
	TTL   time.Duration `json:"ttl_ns,omitempty"`
	// Live is the protocol's rule for a replica that first sees the lease
	// now: it waits the lease out, counted on its own clock from now, for
	// the longer of the holder's TTL and its own, whatever Until says.
	Live bool `json:"live"`
}

func summarize(r *storage.Record, now time.Time) profileView {
	v := profileView{
		Profile: r.Profile, TokenURL: redactURL(r.TokenURL), Flavor: r.Flavor, ClientID: r.ClientID,
		ClientSecret: r.ClientSecret, RefreshToken: r.RefreshToken, AccessToken: r.AccessToken,
		TokenType: r.TokenType, Scopes: r.Scopes,
		RevokeURL: redactURL(extraString(r, extraRevokeURL)), AuthorizeURL: redactURL(extraString(r, extraAuthorizeURL)),
	}
	if !r.Expiry.IsZero() {
		e := r.Expiry.UTC()
		v.Expiry = &e
	}
	v.Valid = r.AccessToken != "" && (r.Expiry.IsZero() || now.Before(r.Expiry))
	if r.Lease != nil {
		v.Lease = &leaseView{Owner: r.Lease.Owner, Until: r.Lease.Until.UTC(), TTL: time.Duration(r.Lease.TTL),
			Live: true}
	}
	if !r.UpdatedAt.IsZero() {
		u := r.UpdatedAt.UTC()
		v.UpdatedAt = &u
	}
	return v
}

// redactURL is secret.RedactURL that keeps "" as "" (for omitempty).
func redactURL(raw string) string {
	if raw == "" {
		return ""
	}
	return secret.RedactURL(raw)
}

// accessStatus says in words whether the access token can be used.
func (v *profileView) accessStatus(now time.Time) string {
	switch {
	case v.AccessToken == "":
		return "none"
	case v.Expiry == nil:
		return "set, expiry unknown"
	case v.Valid:
		return fmt.Sprintf("valid for %s (until %s)", v.Expiry.Sub(now).Round(time.Second), v.Expiry.Format(time.RFC3339))
	default:
		return fmt.Sprintf("expired %s ago", now.Sub(*v.Expiry).Round(time.Second))
	}
}

func (v *profileView) writeText(w io.Writer, store string) error {
	now := time.Now()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, val string) {
		if val != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, httpsafe.Printable(val))
		}
	}
	orNone := func(s secret.Secret) string {
		if s == "" {
			return "(none)"
		}
		return s.String()
	}
	row("profile", v.Profile)
	row("store", store)
	row("token_url", v.TokenURL)
	row("flavor", v.Flavor)
	row("client_id", v.ClientID)
	row("client_secret", orNone(v.ClientSecret))
	row("refresh_token", orNone(v.RefreshToken))
	row("access_token", orNone(v.AccessToken)+" "+v.accessStatus(now))
	row("token_type", v.TokenType)
	row("scopes", strings.Join(v.Scopes, " "))
	row("revoke_url", v.RevokeURL)
	row("authorize_url", v.AuthorizeURL)
	if l := v.Lease; l != nil {
		state := "abandoned"
		if l.Live {
			state = "live"
		}
		row("lease", fmt.Sprintf("%s, held by %s until %s", state, l.Owner, l.Until.Format(time.RFC3339Nano)))
	}
	if v.UpdatedAt != nil {
		row("updated_at", v.UpdatedAt.Format(time.RFC3339))
	}
	return tw.Flush()
}
