package credentials_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/memory"
)

// TestNoSecretInLogsOrErrors runs refreshes, rotation, a store outage and a
// rejected grant with a debug logger, and looks for every secret the
// profile ever held in the log, in error text and in %+v of what callers see.
func TestNoSecretInLogsOrErrors(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f := newFixture(t, oauthtest.Options{Rotate: true})
	secrets := map[string]bool{"storm-secret": true}
	remember := func() {
		rec := f.record(t)
		for _, s := range []string{rec.RefreshToken.Reveal(), rec.AccessToken.Reveal()} {
			if len(s) > 8 {
				secrets[s] = true
			}
		}
	}
	remember()
	c := f.creds(t, func(c *credentials.Config) { c.Logger = logger })
	var outputs []string
	note := func(v ...any) {
		for _, x := range v {
			outputs = append(outputs, fmt.Sprintf("%v %+v %#v", x, x, x))
		}
	}

	tok, err := c.Token(context.Background())
	note(tok, err)
	remember()
	for range 2 {
		tok, err = c.Refresh(context.Background(), nil)
		note(tok, err)
		remember()
	}
	// A store outage while the server rotates: the pending-write path logs.
	hold := f.srv.HoldRefreshes(oauthtest.AfterRotate)
	go func() { <-hold.Arrived(); f.flaky.down.Store(true); hold.Release() }()
	tok, err = c.Refresh(context.Background(), nil)
	note(tok, err)
	f.flaky.down.Store(false)
	// A wrong client secret, then a revoked grant.
	f.store.Update(context.Background(), "p", func(r *storage.Record) error { r.ClientSecret = "wrong-secret-value"; return nil })
	secrets["wrong-secret-value"] = true
	_, err = f.creds(t, func(c *credentials.Config) { c.Logger = logger }).Refresh(context.Background(), nil)
	note(err)
	remember()
	f.srv.Revoke(f.record(t).RefreshToken.Reveal())
	f.store.Update(context.Background(), "p", func(r *storage.Record) error { r.ClientSecret = "storm-secret"; return nil })
	_, err = f.creds(t, func(c *credentials.Config) { c.Logger = logger }).Refresh(context.Background(), nil)
	if !errors.Is(err, credentials.ErrReauthRequired) {
		t.Fatalf("revoked grant: %v", err)
	}
	note(err)

	all := logs.String() + strings.Join(outputs, "\n")
	if logs.Len() == 0 {
		t.Fatal("nothing was logged")
	}
	for s := range secrets {
		if strings.Contains(all, s) {
			t.Errorf("a secret leaked into logs or errors: %.6s…", s)
		}
	}
	t.Logf("%d secrets checked against %d bytes of logs and errors", len(secrets), len(all))
}

// echoingGrant is a Grant whose endpoint echoes its password back in
// error_description, as some do.
type echoingGrant struct{ password secret.Secret }

func (g echoingGrant) Obtain(context.Context, *storage.Record) (*credentials.Tokens, error) {
	return nil, &credentials.EndpointError{URL: "https://idp.example/token", StatusCode: 400, Code: "invalid_grant",
		Description: "password " + g.password.Reveal() + " refused"}
}

func (g echoingGrant) Secrets() []secret.Secret { return []secret.Secret{g.password} }

// A Grant's own secrets (see SecretHolder) are masked in the error the
// caller gets and in the EndpointError it can inspect; the error keeps its
// kind.
func TestGrantSecretsMaskedInErrors(t *testing.T) {
	const password = "pw-echoed-4f1e"
	c, err := credentials.New(credentials.Config{Store: storage.NewStore(memory.New(nil)), Profile: "p",
		Grant: echoingGrant{password: password}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Token(context.Background())
	var ee *credentials.EndpointError
	switch {
	case err == nil:
		t.Fatal("Token succeeded with a refused grant")
	case strings.Contains(err.Error(), password):
		t.Fatalf("the error carries the grant's password: %v", err)
	case !errors.As(err, &ee) || !errors.Is(err, credentials.ErrInvalidGrant):
		t.Fatalf("the error lost its kind: %v", err)
	case strings.Contains(ee.Description, password):
		t.Fatalf("EndpointError.Description carries the grant's password: %q", ee.Description)
	}
}
