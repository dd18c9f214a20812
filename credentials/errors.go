package credentials

import (
	"errors"
	"fmt"
	"strings"

	"github.com/tokencache/tokencache/storage"
)

// ErrReauthRequired means the refresh token no longer works (revoked,
// expired, or lost to a crash after the server rotated it): a person or an
// operator must authorize again. Retrying will not help.
var ErrReauthRequired = errors.New("credentials: re-authorization required")

// ErrStoreUnavailable is storage.ErrUnavailable: the store could not be
// reached and no valid token was held in memory.
var ErrStoreUnavailable = storage.ErrUnavailable

// PartialCredentialsError reports a profile that lacks what a refresh
// needs, as pancloud's PartialCredentialsError does.
type PartialCredentialsError struct {
	Profile string
	Missing []string // e.g. "client_id", "refresh_token"
}

func (e *PartialCredentialsError) Error() string {
	return fmt.Sprintf("credentials: profile %q cannot be refreshed: missing %s", e.Profile, strings.Join(e.Missing, ", "))
}

// EndpointError is an error answer from a token, revocation or
// redemption endpoint. Code is the OAuth 2.0 error code (RFC 6749 §5.2)
// when the server sent one.
type EndpointError struct {
	URL         string
	StatusCode  int
	Code        string // "invalid_grant", "invalid_client", ...
	Description string // the server's error_description, truncated
}

func (e *EndpointError) Error() string {
	var b strings.Builder
	if e.StatusCode == 0 {
		fmt.Fprintf(&b, "credentials: %s unreachable", e.URL)
	} else {
		fmt.Fprintf(&b, "credentials: %s answered %d", e.URL, e.StatusCode)
	}
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Description != "" {
		b.WriteString(": " + e.Description)
	}
	return b.String()
}

// Temporary reports whether the same request may succeed later: server
// errors, throttling and timeouts, but not a rejected grant or client.
func (e *EndpointError) Temporary() bool {
	return e.StatusCode == 0 || e.StatusCode == 408 || e.StatusCode == 429 || e.StatusCode >= 500
}

func temporary(err error) bool {
	var ee *EndpointError
	if errors.As(err, &ee) {
		return ee.Temporary()
	}
	return true // transport errors, timeouts
}
