package auth_test

// Hostile review of the lineage rule (issue 11).

import (
	"context"
	"testing"
	"time"

	"github.com/tokencache/tokencache/auth"
	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/memory"
)

// R4b. The refresh-token scheme creates its profile with the configured
// refresh token written straight into the record, not through
// Record.Seed, so the profile carries no grant: the store cannot tell
// later that the configured token is spent. Profiles.Add of the same
// configuration (documented as safe on every start) then puts it back.
func TestReviewRefreshTokenSchemeSeedsWithoutLineage(t *testing.T) {
	ctx := context.Background()
	srv := oauthtest.NewServer(oauthtest.Options{Rotate: true})
	t.Cleanup(srv.Close)
	srv.AddClient("app", "s")
	seed := srv.IssueRefreshToken("app")
	st := storage.NewStore(memory.New(nil))
	defer st.Close()
	a, err := auth.NewRefreshToken(auth.RefreshTokenConfig{TokenURL: srv.TokenURL(), ClientID: "app", ClientSecret: "s", RefreshToken: secretOf(seed)},
		auth.Env{Store: st, Profile: "p", Credentials: credentials.Config{JournalDir: "-"}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.Token(ctx); err != nil {
		t.Fatal(err)
	}
	rec, _, _ := st.Load(ctx, "p")
	t.Logf("profile created by the scheme: grant %q, knows its seed: %v", rec.Lineage.Grant, rec.HasSeen(seed))

	// The app also registers its configuration with Profiles on start, as
	// Profiles.Add's documentation says it may, and its token expires.
	ps, err := credentials.NewProfiles(credentials.Config{Store: st, JournalDir: "-"})
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	if err := ps.Add(ctx, &storage.Record{Profile: "p", ClientID: "app", ClientSecret: "s", RefreshToken: secretOf(seed), TokenURL: srv.TokenURL()}); err != nil {
		t.Fatal(err)
	}
	st.Update(ctx, "p", func(r *storage.Record) error { r.Expiry = time.Now().Add(-time.Hour); return nil })
	_, err = ps.Token(ctx, "p")
	if n := srv.Stats().ReuseDetections; n != 0 {
		t.Fatalf("%d reuse detection(s) (Token: %v): Add put the spent seed back over a profile the refresh-token scheme created", n, err)
	}
}

func secretOf(s string) secret.Secret { return secret.Secret(s) }
