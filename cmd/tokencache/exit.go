package main

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/tokencache/tokencache/auth"
	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/internal/httpsafe"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
)

// Exit codes; doc.go and the root command's help list them for users.
const (
	exitOK          = 0
	exitOther       = 1
	exitUsage       = 2
	exitNotFound    = 3
	exitCorrupt     = 4
	exitStoreDown   = 5
	exitTemporary   = 6
	exitReauth      = 7
	exitBadClient   = 8
	exitPartialCred = 9
	exitNotEndpoint = 10
	exitConflict    = 11
)

const exitCodeHelp = `Exit codes:
  0  success
  1  other error
  2  usage: bad flags, arguments or store URL
  3  profile not found
  4  store corrupt (left untouched)
  5  store unavailable or read-only
  6  token endpoint unreachable or failing temporarily: retry later
  7  re-authorization required (refresh token revoked or reused: invalid_grant),
     or a login's username or password refused
  8  invalid client (client_id/client_secret rejected: invalid_client)
  9  partial credentials (the profile lacks what a refresh needs)
 10  the token URL does not answer as a token endpoint (a web page, 403, 404, a redirect): check it
 11  conflict: the store changed under the command, or the target exists: look again
`

// usageError marks mistakes in how the command was called, found after
// cobra's own parsing (which is usage by construction, see run).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// exitCode maps an error to its class. The order matters where one error
// matches several classes: a rejected refresh token is an EndpointError
// wrapped in ErrReauthRequired, and a store error can sit under a
// credentials error.
func exitCode(err error) int {
	var ue *usageError
	var pe *credentials.PartialCredentialsError
	var ee *credentials.EndpointError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &pe):
		return exitPartialCred
	case errors.Is(err, credentials.ErrReauthRequired):
		return exitReauth
	case errors.Is(err, credentials.ErrInvalidGrant):
		return exitReauth
	case errors.Is(err, auth.ErrInvalidCredentials):
		// A login's refused password: an EndpointError under it may
		// also match ErrInvalidClient (a bare 401), but the fix is
		// the user's credentials, as for a revoked refresh token.
		return exitReauth
	case errors.Is(err, credentials.ErrInvalidClient):
		return exitBadClient
	case errors.Is(err, credentials.ErrNotTokenEndpoint):
		return exitNotEndpoint
	case errors.As(err, &ee) && ee.Temporary():
		return exitTemporary
	case errors.Is(err, storage.ErrConflict):
		return exitConflict
	case errors.Is(err, storage.ErrNotFound):
		return exitNotFound
	case errors.Is(err, storage.ErrCorrupt):
		return exitCorrupt
	case errors.Is(err, storage.ErrUnavailable), errors.Is(err, storage.ErrReadOnly):
		return exitStoreDown
	case errors.Is(err, storage.ErrInvalid):
		return exitUsage
	case errors.Is(err, context.DeadlineExceeded):
		return exitTemporary
	}
	return exitOther
}

// errorLine renders err as the one line a user reads on stderr: a plain
// statement of what is wrong with this profile and store, the library's
// detail, and for the classes a user can fix, how. Library errors never
// carry secrets and store URLs go through secret.RedactURL, so the line is
// safe to log. The detail quotes servers (error_description) and stores,
// so every URL in it is redacted again and control characters are escaped
// (see httpsafe.Printable): a hostile server cannot write to the terminal.
func (a *app) errorLine(err error, code int) string {
	detail := redactURLs(condenseDriverErrors(oneLine(err.Error())))
	store := secret.RedactURL(a.storeURL)
	ep := "token endpoint"
	if a.revoking {
		ep = "revocation endpoint"
	}
	var msg string
	switch code {
	case exitNotFound:
		var missing *storeMissingError
		if errors.As(err, &missing) {
			msg = missing.Error()
			break
		}
		msg = fmt.Sprintf("profile %q not found in store %s (create it with \"tokencache init\")", a.profile, store)
	case exitCorrupt:
		msg = fmt.Sprintf("store %s is corrupt, nothing was written: %s", store, detail)
	case exitStoreDown:
		msg = fmt.Sprintf("store %s is unavailable: %s", store, detail)
	case exitReauth:
		if errors.Is(err, auth.ErrInvalidCredentials) {
			msg = fmt.Sprintf("profile %q: the %s refused the username or password (check them): %s", a.profile, ep, detail)
			break
		}
		msg = fmt.Sprintf("profile %q needs re-authorization: the server rejected its refresh token (run \"tokencache login\" or \"tokencache init --refresh-token\"): %s", a.profile, detail)
	case exitBadClient:
		msg = fmt.Sprintf("profile %q: the %s rejected the client credentials (check client_id and client_secret): %s", a.profile, ep, detail)
	case exitNotEndpoint:
		what := "token URL"
		if a.revoking {
			what = "revocation URL"
		}
		msg = fmt.Sprintf("profile %q: the %s does not answer as an OAuth 2.0 endpoint (a web page, 403, 404, a redirect); check the %s (tokencache show): %s", a.profile, what, what, detail)
	case exitPartialCred:
		var pe *credentials.PartialCredentialsError
		if errors.As(err, &pe) && slices.Contains(pe.Missing, "refresh_token") {
			msg = fmt.Sprintf("profile %q has no refresh token (revoked, or never authorized): run \"tokencache login\", or \"tokencache init --refresh-token-file FILE\": %s", a.profile, detail)
			break
		}
		msg = detail
	case exitTemporary:
		var ee *credentials.EndpointError
		if !errors.As(err, &ee) && errors.Is(err, context.DeadlineExceeded) {
			// No endpoint answer to blame: the command ran out of time,
			// waiting for a store, a lease holder or the endpoint.
			msg = fmt.Sprintf("profile %q: gave up after --timeout %s (the store, another process's refresh or the token endpoint took longer): %s", a.profile, a.timeout, detail)
			break
		}
		msg = fmt.Sprintf("profile %q: %s unreachable or failing, try again later: %s", a.profile, ep, detail)
	default:
		msg = detail
	}
	return "tokencache: " + httpsafe.Printable(msg)
}

// urlInText finds URLs in an error's text: a scheme, "://" and what
// follows up to a space or a quote.
var urlInText = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^\s"'<>]+`)

// redactURLs masks the secret parts of every URL in s, for library errors
// that quote an endpoint or store URL as they were given.
func redactURLs(s string) string {
	return urlInText.ReplaceAllStringFunc(s, secret.RedactURL)
}

// oneLine keeps multi-line errors (errors.Join) on one line for scripts
// that read stderr line by line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}
