package auth

import (
	"errors"
	"fmt"
	"strings"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/secret"
)

// Sentinel errors, matched with errors.Is.
var (
	// ErrInvalidClient: the token endpoint rejected the client's id or
	// secret (OAuth 2.0 "invalid_client"). Fix the configuration.
	ErrInvalidClient = errors.New("auth: invalid client")
	// ErrInvalidCredentials: the resource owner's username or password was
	// rejected (OAuth 2.0 "invalid_grant" on the password grant).
	ErrInvalidCredentials = errors.New("auth: invalid user credentials")
	// ErrUnknownScheme: New was given a name no scheme registered.
	ErrUnknownScheme = errors.New("auth: unknown scheme")
	// ErrNoToken: the scheme has no bearer token to hand out (TokenSource).
	ErrNoToken = errors.New("auth: scheme has no bearer token")
	// ErrUnreachable: no answer came from the token endpoint (connection
	// refused, DNS, TLS, timeout). It comes inside an *AuthorizationError
	// with status 0, which keeps the transport's error.
	ErrUnreachable = errors.New("auth: token endpoint unreachable")
	// ErrProfileInUse: the store's profile holds another scheme's or
	// another client's token; give this authorizer its own Env.Profile.
	ErrProfileInUse = errors.New("auth: profile belongs to another configuration")
)

// OptionError reports a scheme option that is missing, unknown or
// malformed. It never quotes the option's value, which may be a secret.
type OptionError struct {
	Scheme string
	Option string
	Reason string
}

func (e *OptionError) Error() string {
	return fmt.Sprintf("auth: scheme %q: option %q: %s", e.Scheme, e.Option, e.Reason)
}

// AuthorizationError is an endpoint's refusal to authorize: the HTTP
// status and the server's message, with secrets the Masker knows removed.
// It wraps ErrInvalidClient or ErrInvalidCredentials when the OAuth 2.0
// error code says so, and the underlying error (often a
// *credentials.EndpointError, possibly wrapped in
// credentials.ErrReauthRequired).
type AuthorizationError struct {
	Scheme string
	// ClientID and Username are the client and user the request was
	// for, when the scheme has them; never a secret.
	ClientID   string
	Username   string
	StatusCode int
	Code       string // OAuth 2.0 error code, when the server sent one
	Message    string

	kind error
	err  error
}

func (e *AuthorizationError) Error() string {
	var b strings.Builder
	if e.StatusCode == 0 {
		fmt.Fprintf(&b, "auth: %s: authorization failed: no answer", e.Scheme)
	} else {
		fmt.Fprintf(&b, "auth: %s: authorization failed with status %d", e.Scheme, e.StatusCode)
	}
	if e.Code != "" {
		b.WriteString(" (" + e.Code + ")")
	}
	switch {
	case errors.Is(e.kind, ErrInvalidClient) && e.ClientID != "":
		fmt.Fprintf(&b, " for client %q", e.ClientID)
	case errors.Is(e.kind, ErrInvalidCredentials) && e.Username != "":
		fmt.Fprintf(&b, " for user %q", e.Username)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	return b.String()
}

func (e *AuthorizationError) Unwrap() []error {
	if e.kind == nil {
		return []error{e.err}
	}
	return []error{e.kind, e.err}
}

// maskedError keeps an error's chain but shows its text masked: errors
// from lower layers may quote a server's message, which might echo a secret.
type maskedError struct {
	msg string
	err error
}

func (e *maskedError) Error() string { return e.msg }
func (e *maskedError) Unwrap() error { return e.err }

// mapError turns an error from credentials or an endpoint into this
// package's typed errors. password says whether "invalid_grant", or a
// bare 401 or 403, means the user's credentials were refused: it does for
// the password grant, whose refresh fallback never surfaces invalid_grant,
// and for a token endpoint's login.
func mapError(scheme string, m *secret.Masker, password bool, err error) error {
	if err == nil {
		return nil
	}
	var ee *credentials.EndpointError
	if errors.As(err, &ee) && ee.StatusCode == 0 && ee.Err != nil {
		// An authorization error covers a failure "for unknown
		// reasons": no answer at all is one.
		return &AuthorizationError{Scheme: scheme, Message: m.Mask(ee.Error()), kind: ErrUnreachable, err: err}
	}
	if ee == nil || ee.StatusCode == 0 {
		return &maskedError{msg: m.Mask(fmt.Sprintf("auth: %s: %v", scheme, err)), err: err}
	}
	ae := &AuthorizationError{Scheme: scheme, StatusCode: ee.StatusCode, Code: ee.Code, Message: m.Mask(ee.Description), err: err}
	switch {
	case errors.Is(ee.Err, credentials.ErrInvalidClient):
		// The grant itself said so (Cognito's refusals need reading).
		ae.kind = ErrInvalidClient
	case errors.Is(ee, credentials.ErrInvalidClient) && (!password || ee.Code != ""):
		// For a login, a bare 401 is the user's refusal (below); a
		// server that names the client in its error code means the client.
		ae.kind = ErrInvalidClient
	case password && (errors.Is(ee, credentials.ErrInvalidGrant) || ee.Code == "" && (ee.StatusCode == 401 || ee.StatusCode == 403)):
		ae.kind = ErrInvalidCredentials
	}
	return ae
}
