package auth_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/tokencache/tokencache/auth"
	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/memory"
)

// Params are decoded through encoding/json since 648e881: the values are
// marshalled and decoded again, and json.Marshal coerces a string to valid
// UTF-8, replacing each invalid byte with U+FFFD. A password (or any
// secret) that is not valid UTF-8 (a Latin-1 one read from a legacy file
// or an environment variable) is silently sent as another password; the
// reflection decoder before set the bytes as given.
func TestReview12cParamsKeepSecretBytes(t *testing.T) {
	const password = "caf\xe9-p\xe4ss" // Latin-1 "café-päss"
	a, err := auth.New("basic", auth.Params{"username": "u", "password": password}, auth.Env{})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "http://127.0.0.1/", nil)
	if err := a.Authorize(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	_, got, ok := req.BasicAuth()
	if !ok {
		t.Fatal("no Basic credentials")
	}
	if got != password {
		t.Errorf("the password sent is %q, configured %q: decoding changed its bytes", got, password)
	}
}

// Env.Credentials' doc: AuthStyle comes "from the scheme (its client_auth
// option), and a scheme's constructor refuses a Credentials that sets one
// of them otherwise". checkCredentials compares with the style the scheme
// passes in tokenOptions, but the grant schemes (client credentials,
// password, cognito, sl1) pass none, so it compares with AuthBasic: the
// scheme's own client_auth "body" repeated in Env.Credentials is refused,
// and a conflicting AuthBasic is accepted.
func TestReview12cEnvCredentialsAuthStyleFollowsClientAuth(t *testing.T) {
	st := storage.NewStore(memory.New(nil))
	defer st.Close()
	params := auth.Params{"token_url": "http://127.0.0.1:1/token", "client_id": "app", "client_secret": "s", "client_auth": "body"}
	build := func(style credentials.AuthStyle) error {
		a, err := auth.New("oauth2_client_credentials", params, auth.Env{Store: st, Profile: "p",
			Credentials: credentials.Config{AuthStyle: style, JournalDir: "-"}})
		if closer, ok := a.(interface{ Close() error }); ok && err == nil {
			closer.Close()
		}
		return err
	}
	if err := build(credentials.AuthInBody); err != nil {
		t.Errorf("client_auth body and Env.Credentials.AuthStyle AuthInBody (the same): refused: %v", err)
	}
	if err := build(credentials.AuthBasic); err == nil || !strings.Contains(err.Error(), "AuthStyle") {
		t.Errorf("client_auth body and Env.Credentials.AuthStyle AuthBasic (another value): err %v, want one naming AuthStyle", err)
	}
}
