package credentials

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/tokencache/tokencache/storage"
)

// ErrReauthRequired means the refresh token no longer works (revoked,
// expired, or lost to a crash after the server rotated it): a person or an
// operator must authorize again. Retrying will not help.
var ErrReauthRequired = errors.New("credentials: re-authorization required")

// ErrRefreshRequired: Config.ManualRefresh is set and there is no valid
// token to hand out; call Refresh when a refresh is wanted.
var ErrRefreshRequired = errors.New("credentials: no valid token and automatic refresh is off")

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

// Sentinels that an *EndpointError matches with errors.Is, by what the
// server answered. Control flow tests these, never the text of an error.
var (
	// ErrInvalidGrant: the server refused the grant: the refresh token,
	// authorization code or password (OAuth 2.0 invalid_grant, or
	// invalid_token). A Grant reports it the same way, by returning an
	// error that matches it.
	ErrInvalidGrant = errors.New("credentials: the server refused the grant")
	// ErrInvalidClient: the server does not accept the client id and
	// secret (invalid_client, or a 401 without an error code).
	ErrInvalidClient = errors.New("credentials: the server refused the client")
	// ErrNotTokenEndpoint: the URL answered, but not as an OAuth 2.0
	// token endpoint would: an HTML page, a 404 or 405, a redirect. The
	// URL is likely wrong; retrying will not help.
	ErrNotTokenEndpoint = errors.New("credentials: not a token endpoint")
	// ErrMalformedResponse: a token endpoint's JSON answer was cut short
	// or broken. The request may have reached the server, which may have
	// rotated the refresh token; it is retried like an outage.
	ErrMalformedResponse = errors.New("credentials: malformed token response")
)

// EndpointError is an answer of a token, revocation or redemption endpoint
// that is not a success, or the failure to get one, in the spirit of
// x/oauth2's RetrieveError.
type EndpointError struct {
	URL        string // the endpoint, without user info or query
	StatusCode int    // 0 when no response arrived
	Code       string // the OAuth 2.0 error code (RFC 6749 §5.2), if any
	// Description is error_description, truncated, control characters
	// escaped, and the secrets the request carried and the record's own
	// masked: some servers echo what they were sent.
	Description string
	ErrorURI    string // error_uri, if any
	// ContentType and Body describe an answer that is not a token
	// response: its media type and first bytes (escaped), so that a wrong
	// URL can be recognised. Body is empty for JSON, which may hold tokens.
	ContentType string
	Body        string
	// Response is the HTTP response (its body already read and closed);
	// nil when none arrived.
	Response *http.Response
	// RetryAfter is how long a 429 or 503 answer, or a 403 throttle,
	// asked clients to wait (its Retry-After header); zero when it did not
	// say. A 403 without an OAuth code that sets it is a throttle (an API
	// gateway's or WAF's rate limit) and Temporary; without it, a 403 is
	// ErrNotTokenEndpoint.
	RetryAfter time.Duration
	// Err is the cause: the transport's error when no response arrived,
	// else one of ErrNotTokenEndpoint or ErrMalformedResponse, or nil.
	Err error
}

func (e *EndpointError) Error() string {
	var b strings.Builder
	if e.StatusCode == 0 {
		fmt.Fprintf(&b, "credentials: %s unreachable", e.URL)
	} else {
		fmt.Fprintf(&b, "credentials: %s answered %d", e.URL, e.StatusCode)
	}
	if e.ContentType != "" {
		b.WriteString(" " + e.ContentType)
	}
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Description != "" {
		b.WriteString(": " + e.Description)
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	if e.Body != "" {
		fmt.Fprintf(&b, " (body begins %q)", e.Body)
	}
	return b.String()
}

// Unwrap returns the cause, so that errors.Is sees a transport timeout or
// net.Error behind the endpoint error.
func (e *EndpointError) Unwrap() error { return e.Err }

// Is matches ErrInvalidGrant and ErrInvalidClient by the server's answer.
func (e *EndpointError) Is(target error) bool {
	switch target {
	case ErrInvalidGrant:
		return e.Code == "invalid_grant" || e.Code == "invalid_token"
	case ErrInvalidClient:
		return e.Code == "invalid_client" || (e.Code == "" && e.StatusCode == http.StatusUnauthorized && e.Err == nil)
	}
	return false
}

// Temporary reports whether the same request may succeed later: no
// answer, throttling, server errors and broken bodies, but not a refused
// grant or client, nor a URL that is not a token endpoint.
func (e *EndpointError) Temporary() bool {
	switch {
	case errors.Is(e.Err, ErrNotTokenEndpoint):
		return false
	case errors.Is(e.Err, ErrMalformedResponse):
		return true
	}
	if e.StatusCode == http.StatusForbidden && e.Code == "" && e.RetryAfter > 0 {
		return true
	}
	return e.StatusCode == 0 || e.StatusCode == 408 || e.StatusCode == 429 || e.StatusCode >= 500
}

func temporary(err error) bool {
	var ee *EndpointError
	if errors.As(err, &ee) {
		return ee.Temporary()
	}
	return !errors.Is(err, ErrInvalidGrant) && !errors.Is(err, ErrReauthRequired)
}
