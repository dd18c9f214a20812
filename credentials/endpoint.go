package credentials

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tokencache/tokencache/internal/httpsafe"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
)

// FlavorOAuth2 is the built-in token endpoint flavor, RFC 6749 and
// RFC 7009: form POSTs to the token and revocation URLs. It is what a
// record with an empty Flavor speaks; see Flavor for the others.
const FlavorOAuth2 = "oauth2"

// AuthStyle says how a client authenticates to the token endpoint. Its
// values are the names configuration uses; the zero value is AuthBasic.
type AuthStyle string

const (
	// AuthBasic sends client_id and client_secret with HTTP Basic
	// (RFC 6749 §2.3.1), the method servers must support.
	AuthBasic AuthStyle = "basic"
	// AuthInBody sends them as form parameters.
	AuthInBody AuthStyle = "body"
)

// ParseAuthStyle reads a configured client authentication: "basic" or
// "body", or the spellings of SL1 credentials, "basic_auth" and
// "post_body"; "" is "basic".
func ParseAuthStyle(s string) (AuthStyle, error) {
	switch s {
	case "", string(AuthBasic), "basic_auth":
		return AuthBasic, nil
	case string(AuthInBody), "post_body":
		return AuthInBody, nil
	}
	return "", fmt.Errorf("credentials: client authentication %q: want %q or %q", s, AuthBasic, AuthInBody)
}

// maxResponse bounds what we read from an endpoint; token responses are small.
const maxResponse = 1 << 20

// tokenResponse is RFC 6749 §5.1, plus §5.2's error members.
type tokenResponse struct {
	AccessToken  string     `json:"access_token"`
	TokenType    string     `json:"token_type"`
	RefreshToken string     `json:"refresh_token"`
	ExpiresIn    lenientInt `json:"expires_in"`
	Scope        string     `json:"scope"`
	Error        string     `json:"error"`
	Description  string     `json:"error_description"`
	ErrorURI     string     `json:"error_uri"`

	// Where a success answer came from, for an error that finds no
	// token in it (see result).
	where       string
	contentType string
	resp        *http.Response
}

// lenientInt accepts 3600 and "3600": both are seen in the wild.
type lenientInt int64

func (n *lenientInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		return nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return err
	}
	*n = lenientInt(v)
	return nil
}

// endpoint talks to RFC 6749 token and RFC 7009 revocation endpoints, and
// reads the answers of every flavor's.
type endpoint struct {
	client    *http.Client
	authStyle AuthStyle
}

// refreshGrant asks for a new access token with rec's refresh token.
func (e *endpoint) refreshGrant(ctx context.Context, rec *storage.Record) (*tokenResponse, error) {
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rec.RefreshToken.Reveal()}}
	return e.postForm(ctx, rec.TokenURL, form, rec.ClientID, rec.ClientSecret)
}

// postForm makes an RFC 6749 token request.
func (e *endpoint) postForm(ctx context.Context, tokenURL string, form url.Values, clientID string, clientSecret secret.Secret) (*tokenResponse, error) {
	req, err := e.formRequest(ctx, tokenURL, form, clientID, clientSecret)
	if err != nil {
		return nil, err
	}
	tr, err := e.do(req)
	if err != nil {
		// Some servers echo what they were sent in error_description.
		return nil, maskStrings(err, sentSecrets(form, clientSecret))
	}
	return tr, nil
}

// secretParams are the token request parameters that carry secrets.
var secretParams = []string{"client_secret", "client_assertion", "assertion", "refresh_token", "password",
	"code", "code_verifier", "device_code", "token"}

// sentSecrets lists the secrets a request sent: the client secret as given
// and as it went in Basic credentials (escaped), and the values of form's
// secret parameters.
func sentSecrets(form url.Values, clientSecret secret.Secret) []string {
	vals := []string{clientSecret.Reveal(), url.QueryEscape(clientSecret.Reveal())}
	for _, k := range secretParams {
		vals = append(vals, form[k]...)
	}
	return vals
}

// requestSecrets lists the secrets req carries: its Basic password, and
// the secret parameters of a form body it can send again (GetBody).
func requestSecrets(req *http.Request) []string {
	var vals []string
	if _, pw, ok := req.BasicAuth(); ok {
		vals = append(vals, pw)
		if raw, err := url.QueryUnescape(pw); err == nil {
			vals = append(vals, raw)
		}
	}
	mt, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if mt != "application/x-www-form-urlencoded" || req.GetBody == nil {
		return vals
	}
	body, err := req.GetBody()
	if err != nil {
		return vals
	}
	defer body.Close()
	b, err := io.ReadAll(io.LimitReader(body, maxResponse))
	if err != nil {
		return vals
	}
	form, err := url.ParseQuery(string(b))
	if err != nil {
		return vals
	}
	return append(vals, sentSecrets(form, "")...)
}

// formRequest builds a form POST that authenticates the client as the
// token endpoint expects; the device authorization endpoint (RFC 8628)
// takes the same.
func (e *endpoint) formRequest(ctx context.Context, tokenURL string, form url.Values, clientID string, clientSecret secret.Secret) (*http.Request, error) {
	// A public client (RFC 6749 §2.1: a native app, a CLI) has no secret
	// to authenticate with; it identifies itself with client_id in the body
	// (§3.2.1) and sends no Authorization header, whatever the style: an
	// empty Basic password is a confidential client's failed login to
	// servers that check it.
	public := clientSecret == ""
	if e.authStyle == AuthInBody || public {
		form.Set("client_id", clientID)
		if !public {
			form.Set("client_secret", clientSecret.Reveal())
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("credentials: token URL %q: %w", tokenURL, errors.Unwrap(err))
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if e.authStyle != AuthInBody && !public {
		req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(clientSecret.Reveal()))
	}
	return req, nil
}

func (e *endpoint) do(req *http.Request) (*tokenResponse, error) {
	resp, body, err := e.send(req)
	if err != nil {
		return nil, err
	}
	return parseAnswer(redactURL(req.URL), resp, body)
}

// send makes the request and reads the answer's body. Errors are the
// context's or an *EndpointError: no answer, a redirect, a body cut off.
func (e *endpoint) send(req *http.Request) (*http.Response, []byte, error) {
	where := redactURL(req.URL)
	resp, err := e.client.Do(req)
	if err != nil {
		// url.Error repeats the URL, which may carry a query secret.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if ctxErr := req.Context().Err(); ctxErr != nil {
			return nil, nil, fmt.Errorf("credentials: %s: %w", where, ctxErr)
		}
		return nil, nil, &EndpointError{URL: where, Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 3 {
		return nil, nil, RedirectError(resp)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		// Cut off mid-body: the server answered, and may have rotated.
		return nil, nil, &EndpointError{URL: where, StatusCode: resp.StatusCode, Response: resp, Err: fmt.Errorf("%w: reading the body: %w", ErrMalformedResponse, err)}
	}
	return resp, body, nil
}

// DoEndpointRequest sends req, a request that carries credentials to an
// endpoint whose dialect is not RFC 6749's, and reads the answer, for Grant
// implementations, so that every endpoint's failures are reported alike.
// It never follows a redirect (see RedirectError) and reads at most 1 MiB.
// A 2xx answer is returned for the caller to read. Every other outcome is
// an *EndpointError classified as the token endpoint's own are: no answer
// (Unwrap gives the transport's error), a body cut short
// (ErrMalformedResponse: the server may have acted), an OAuth 2.0 error
// response, an outage (408, 429, 5xx, or a JSON answer), or a page that is
// not an endpoint's answer (ErrNotTokenEndpoint), with one exception: a 401
// or 403 without an OAuth 2.0 error code is left unclassified, since custom
// login endpoints answer refused credentials with them. Secrets the
// request carries (its Basic password, the secret parameters of a form
// body) are masked in the error, as the server may echo them. The response and its
// body are returned whenever an answer was read, with the error for one
// that is not a success, for dialects that name their errors in members of
// their own; they are nil when none was. A context that ended is the
// context's error.
func DoEndpointRequest(client *http.Client, req *http.Request) (*http.Response, []byte, error) {
	e := endpoint{client: httpsafe.NoRedirects(client)}
	secrets := requestSecrets(req) // before send, which consumes the body
	resp, body, err := e.send(req)
	if err != nil || resp.StatusCode/100 == 2 {
		return resp, body, err
	}
	_, err = parseAnswer(redactURL(req.URL), resp, body)
	refused := resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden
	if ee, ok := err.(*EndpointError); ok && refused && ee.Code == "" && errors.Is(ee.Err, ErrNotTokenEndpoint) {
		ee.Err = nil
	}
	return resp, body, maskStrings(err, secrets)
}

// parseAnswer is parseTokenResponse for an answer send read from where.
func parseAnswer(where string, resp *http.Response, body []byte) (*tokenResponse, error) {
	tr, err := parseTokenResponse(where, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	if tr != nil {
		tr.resp = resp
	}
	if ee, ok := err.(*EndpointError); ok {
		ee.Response = resp
		switch resp.StatusCode {
		case http.StatusTooManyRequests, http.StatusServiceUnavailable:
			ee.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), time.Now())
		case http.StatusForbidden:
			// A 403 that says when to come back is a throttle (a
			// gateway's or WAF's rate limit), not a wrong URL.
			if ra := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ra > 0 && ee.Code == "" {
				ee.RetryAfter, ee.Err = ra, nil
			}
		}
	}
	return tr, err
}

// retryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, 86400)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), 24*time.Hour)
	}
	return 0
}

// RedirectError is the error for a 3xx answer to a request that carried
// credentials. Such requests never follow redirects (the client secret and
// refresh token would go to wherever the answer points, and its tokens
// would be stored as ours), so the answer is reported, naming the redacted
// target; it matches ErrNotTokenEndpoint. For Grant implementations.
func RedirectError(resp *http.Response) *EndpointError {
	target := "nowhere"
	if loc, err := resp.Location(); err == nil {
		target = redactURL(loc)
	}
	return &EndpointError{URL: redactURL(resp.Request.URL), StatusCode: resp.StatusCode, Response: resp, Err: ErrNotTokenEndpoint,
		Description: "redirected to " + target + "; credentials are not sent to a redirect target: check the endpoint URL"}
}

// parseTokenResponse reads a token endpoint's answer: a token response
// (RFC 6749 §5.1), an error response (§5.2), or something else, which is
// an *EndpointError that says what it was.
func parseTokenResponse(where string, status int, contentType string, body []byte) (*tokenResponse, error) {
	mt, _, _ := mime.ParseMediaType(contentType)
	var tr tokenResponse
	jsonErr := json.Unmarshal(body, &tr)
	if jsonErr != nil && status/100 == 2 && isForm(mt) {
		// GitHub-style servers answer form-encoded bodies.
		if v, err := url.ParseQuery(string(body)); err == nil {
			exp, _ := strconv.ParseInt(v.Get("expires_in"), 10, 64)
			tr = tokenResponse{AccessToken: v.Get("access_token"), TokenType: v.Get("token_type"),
				RefreshToken: v.Get("refresh_token"), ExpiresIn: lenientInt(exp), Error: v.Get("error")}
			jsonErr = nil
		}
	}
	ee := &EndpointError{URL: where, StatusCode: status}
	switch {
	case status/100 == 2 && len(bytes.TrimSpace(body)) == 0:
		// RFC 7009 revocation answers 200 with an empty body.
		return &tokenResponse{where: where, contentType: mt}, nil
	case jsonErr == nil && tr.Error != "":
		ee.Code, ee.Description, ee.ErrorURI = truncate(tr.Error, 64), truncate(tr.Description, 200), truncate(tr.ErrorURI, 200)
	case jsonErr == nil && status/100 == 2:
		tr.where, tr.contentType = where, mt
		return &tr, nil
	case status == 401:
		// A refused client (RFC 6749 §5.2 allows a bare 401 with
		// WWW-Authenticate): the fix is the secret, not the URL.
		ee.ContentType = mt
	case status == 403 || status == 404 || status == 405 || status == 410:
		// No OAuth error code: the URL is wrong, not the request,
		// whatever the content type (an API gateway's JSON 404 is no
		// token endpoint either).
		ee.ContentType, ee.Err = mt, ErrNotTokenEndpoint
		if mt == "text/html" {
			ee.Body = truncate(string(body), 64)
		}
	case jsonErr == nil:
		// A JSON answer with an error status and no OAuth error code.
	case isJSON(mt) && status/100 == 2:
		// A cut or broken JSON body: the server may have rotated.
		ee.ContentType, ee.Err = mt, ErrMalformedResponse
	case isJSON(mt) || status == 408 || status == 429 || status >= 500:
		// An outage, maybe a proxy's error page: the status says it all.
		ee.ContentType = mt
	default:
		// A web page, a 404 or 405: some URL that is not a token endpoint.
		ee.ContentType, ee.Err = mt, ErrNotTokenEndpoint
		if mt == "text/html" {
			ee.Body = truncate(string(body), 64) // enough to recognise the page
		}
	}
	return nil, ee
}

func isJSON(mt string) bool {
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

func isForm(mt string) bool {
	return mt == "application/x-www-form-urlencoded" || mt == "text/plain"
}

// Tokens is what a grant obtains.
type Tokens struct {
	AccessToken  secret.Secret
	TokenType    string
	Expiry       time.Time     // zero when unknown
	RefreshToken secret.Secret // set when the server issued or rotated one
}

// Grant obtains new tokens for a profile's record. Credentials calls it
// while holding the profile's lease, so at most one call per profile is in
// flight across all processes sharing the store. An error that matches
// ErrInvalidGrant (an *EndpointError with invalid_grant does, or wrap the
// sentinel) means re-authorization is needed; one that is an
// *EndpointError reports whether it is Temporary, and any other error is
// taken as temporary.
type Grant interface {
	Obtain(ctx context.Context, rec *storage.Record) (*Tokens, error)
}

// A SecretHolder is a Grant that holds secrets the record does not: a
// password, a client secret of its own. Some token endpoints echo what
// they were sent in error_description; errors and spans mask these
// secrets as they mask the record's own.
type SecretHolder interface {
	Secrets() []secret.Secret
}

// maskSecrets returns err with every value in secrets masked: in the text
// of err and in the fields of an *EndpointError in its chain.
func maskSecrets(err error, secrets []secret.Secret) error {
	vals := make([]string, len(secrets))
	for i, s := range secrets {
		vals[i] = s.Reveal()
	}
	return maskStrings(err, vals)
}

// recordSecrets are the secrets of rec that a request may carry.
func recordSecrets(rec *storage.Record) []secret.Secret {
	return []secret.Secret{rec.AccessToken, rec.RefreshToken, rec.ClientSecret, secret.Secret(url.QueryEscape(rec.ClientSecret.Reveal()))}
}

// maskStrings is maskSecrets for revealed values. Values shorter than 4
// bytes are left: masking them would garble the message (every "a" or
// "ok" in it) to hide a value nobody relies on to be secret. An
// *EndpointError that is err itself is masked in place and returned as
// is, so that callers may still take it by type assertion.
func maskStrings(err error, secrets []string) error {
	var vals []string
	for _, v := range secrets {
		if len(v) >= 4 {
			vals = append(vals, v)
		}
	}
	if err == nil || len(vals) == 0 {
		return err
	}
	// Longest first, so that a secret containing another is masked whole.
	slices.SortFunc(vals, func(a, b string) int { return len(b) - len(a) })
	mask := func(s string) string {
		for _, v := range vals {
			s = strings.ReplaceAll(s, v, secret.Mask)
		}
		return s
	}
	var ee *EndpointError
	if errors.As(err, &ee) {
		ee.Description, ee.ErrorURI, ee.Body = mask(ee.Description), mask(ee.ErrorURI), mask(ee.Body)
		if err == error(ee) {
			return ee
		}
	}
	return &maskedError{err: err, text: mask(err.Error())}
}

// maskedError is an error whose text has secrets masked; errors.Is and
// errors.As see the original chain.
type maskedError struct {
	err  error
	text string
}

func (e *maskedError) Error() string { return e.text }
func (e *maskedError) Unwrap() error { return e.err }

// GrantFunc adapts a function to Grant.
type GrantFunc func(ctx context.Context, rec *storage.Record) (*Tokens, error)

// Obtain calls f.
func (f GrantFunc) Obtain(ctx context.Context, rec *storage.Record) (*Tokens, error) {
	return f(ctx, rec)
}

// result turns a successful response into Tokens; sent is when the request
// left, the conservative origin for expires_in.
func (tr *tokenResponse) result(sent time.Time) (*Tokens, error) {
	if tr.AccessToken == "" {
		status := http.StatusOK
		if tr.resp != nil {
			status = tr.resp.StatusCode
		}
		return nil, &EndpointError{URL: tr.where, StatusCode: status, ContentType: tr.contentType, Response: tr.resp,
			Err: ErrNotTokenEndpoint, Description: "a success answer without access_token"}
	}
	return &Tokens{AccessToken: secret.Secret(tr.AccessToken), TokenType: tr.TokenType,
		Expiry: tr.expiry(sent), RefreshToken: secret.Secret(tr.RefreshToken)}, nil
}

// TokenRequest is an RFC 6749 token request of any grant type: the
// endpoint, the client and how it authenticates, and the grant's
// parameters.
type TokenRequest struct {
	TokenURL     string
	ClientID     string
	ClientSecret secret.Secret // "" for a public client, which sends client_id in the body
	AuthStyle    AuthStyle     // how a confidential client authenticates; "" is AuthBasic
	// Form holds grant_type and the grant's parameters. It is not
	// changed: the client's own parameters go into a copy.
	Form url.Values
}

// RequestToken makes r and returns the tokens, for Grant implementations.
// Redirects are never followed: the request carries credentials. Errors
// are *EndpointError or the context's.
func RequestToken(ctx context.Context, client *http.Client, r TokenRequest) (*Tokens, error) {
	e := endpoint{client: httpsafe.NoRedirects(client), authStyle: r.AuthStyle}
	sent := time.Now()
	tr, err := e.postForm(ctx, r.TokenURL, maps.Clone(r.Form), r.ClientID, r.ClientSecret)
	if err != nil {
		return nil, err
	}
	return tr.result(sent)
}

// expiry turns a token response into an absolute expiry: expires_in when
// given, else the JWT exp claim, else zero (unknown).
func (tr *tokenResponse) expiry(now time.Time) time.Time {
	if tr.ExpiresIn > 0 {
		return now.Add(time.Duration(tr.ExpiresIn) * time.Second)
	}
	if exp, ok := JWTExpiry(tr.AccessToken); ok {
		return exp
	}
	return time.Time{}
}

// redactURL is secret.RedactURL, the one redaction of every URL printed or
// logged.
func redactURL(u *url.URL) string { return secret.RedactURL(u.String()) }

// truncate shortens a server-provided string for an error message, and
// escapes its control characters, so that printing it cannot rewrite a
// terminal.
func truncate(s string, n int) string {
	if len(s) > n {
		s = s[:n] + "…"
	}
	return httpsafe.Printable(s)
}
