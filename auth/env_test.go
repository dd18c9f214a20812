package auth_test

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/tokencache/tokencache/auth"
	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/memory"
)

// Env.Credentials tunes the protocol; the fields Env and the scheme own
// are refused there, not silently overridden. The same values as Env's
// (what a caller that builds one credentials.Config for both passes) are
// accepted.
func TestEnvCredentialsOwnedFields(t *testing.T) {
	st := storage.NewStore(memory.New(nil))
	defer st.Close()
	other := storage.NewStore(memory.New(nil))
	defer other.Close()
	params := auth.Params{"token_url": "http://127.0.0.1:1/token", "client_id": "app", "client_secret": "s"}
	for _, c := range []struct {
		name  string
		creds credentials.Config
		want  string // "" : accepted
	}{
		{"tuning only", credentials.Config{MaxRetries: -1, JournalDir: "-"}, ""},
		{"same as Env", credentials.Config{Store: st, Profile: "p", JournalDir: "-"}, ""},
		{"another store", credentials.Config{Store: other}, "Store"},
		{"another profile", credentials.Config{Profile: "q"}, "Profile"},
		{"a logger Env lacks", credentials.Config{Logger: slog.New(slog.DiscardHandler)}, "Logger"},
		{"the scheme's client auth", credentials.Config{AuthStyle: credentials.AuthInBody}, "AuthStyle"},
		{"the default client auth", credentials.Config{AuthStyle: credentials.AuthBasic, JournalDir: "-"}, ""},
	} {
		a, err := auth.New("oauth2_client_credentials", params, auth.Env{Store: st, Profile: "p", Credentials: c.creds})
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: err %v, want one naming %s", c.name, err, c.want)
		}
		if closer, ok := a.(interface{ Close() error }); ok && err == nil {
			closer.Close()
		}
	}
}
