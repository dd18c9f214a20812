package auth

import (
	"context"
	"encoding/base64"
	"net/http"
	"strings"

	"github.com/tokencache/tokencache/secret"
)

func init() { registerConfig("basic", NewBasic) }

// BasicConfig configures HTTP Basic authentication (RFC 7617).
type BasicConfig struct {
	Username string        `json:"username"`
	Password secret.Secret `json:"password"`
}

// Basic sends a username and password in every request.
type Basic struct {
	printable
	header string // precomputed: the value never changes
}

// NewBasic returns a Basic authorizer.
func NewBasic(c BasicConfig, env Env) (*Basic, error) {
	if c.Username == "" {
		return nil, &OptionError{Scheme: "basic", Option: "username", Reason: "required"}
	}
	// RFC 7617: the user-id cannot contain a colon, the server would split there.
	if strings.Contains(c.Username, ":") {
		return nil, &OptionError{Scheme: "basic", Option: "username", Reason: "must not contain ':'"}
	}
	creds := basicCredentials(c.Username, c.Password)
	b := &Basic{printable: printable{"Basic"}, header: "Basic " + creds.Reveal()}
	// The password travels base64-encoded: mask that form too.
	newSecrets(env.Masker, "basic").set("password", c.Password, creds)
	return b, nil
}

// basicCredentials is the base64 part of an RFC 7617 header.
func basicCredentials(user string, password secret.Secret) secret.Secret {
	return secret.Secret(base64.StdEncoding.EncodeToString([]byte(user + ":" + password.Reveal())))
}

// Authorize sets the Authorization header.
func (b *Basic) Authorize(_ context.Context, req *http.Request) error {
	req.Header.Set("Authorization", b.header)
	return nil
}
