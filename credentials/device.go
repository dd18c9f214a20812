package credentials

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
)

// GrantTypeDeviceCode is the grant type of a device access token request
// (RFC 8628 §3.4).
const GrantTypeDeviceCode = "urn:ietf:params:oauth:grant-type:device_code"

// Outcomes of a device authorization that ended without tokens. The
// errors ExchangeDevice returns match them with errors.Is, and wrap the
// server's *EndpointError when the server said so.
var (
	// ErrAccessDenied: the user declined the authorization (access_denied).
	ErrAccessDenied = errors.New("credentials: the user denied the authorization")
	// ErrDeviceCodeExpired: nobody approved the code before it expired
	// (expired_token, or its expires_in passed). Start again.
	ErrDeviceCodeExpired = errors.New("credentials: the device code expired before it was approved")
)

// slowDownStep is how much longer a client waits between polls after each
// slow_down answer (RFC 8628 §3.5).
const slowDownStep = 5 * time.Second

// defaultDeviceInterval is the polling interval when the server gives none
// (RFC 8628 §3.2).
const defaultDeviceInterval = 5 * time.Second

// maxPollFailures is how many temporary failures in a row (no answer,
// 5xx) a device exchange waits out before it gives up.
const maxPollFailures = 3

// DeviceAuth is the first leg of the device authorization grant (RFC 8628
// §3.2): show the user VerificationURI and UserCode (or offer
// VerificationURIComplete, which carries the code), then pass it to
// ExchangeDevice, which waits for the user's decision.
type DeviceAuth struct {
	DeviceCode              secret.Secret
	UserCode                string
	VerificationURI         string
	VerificationURIComplete string    // optional
	Expiry                  time.Time // zero when the server gave none
	Interval                time.Duration
}

// deviceResponse is RFC 8628 §3.2. verification_url is what some
// providers (Google) call verification_uri.
type deviceResponse struct {
	DeviceCode              string     `json:"device_code"`
	UserCode                string     `json:"user_code"`
	VerificationURI         string     `json:"verification_uri"`
	VerificationURL         string     `json:"verification_url"`
	VerificationURIComplete string     `json:"verification_uri_complete"`
	ExpiresIn               lenientInt `json:"expires_in"`
	Interval                lenientInt `json:"interval"`
}

// AuthorizeDevice asks the device authorization endpoint for a device code
// and a user code (RFC 8628 §3.1), as the profile's client, for the
// profile's scopes. The profile must hold client_id and token_url; a
// public client (no secret) identifies itself by client_id alone.
func (c *Credentials) AuthorizeDevice(ctx context.Context, deviceAuthURL string) (*DeviceAuth, error) {
	rec, err := c.deviceRecord(ctx)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(deviceAuthURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("credentials: device authorization URL %q is not an absolute http(s) URL", secret.RedactURL(deviceAuthURL))
	}
	form := url.Values{}
	if len(rec.Scopes) > 0 {
		form.Set("scope", strings.Join(rec.Scopes, " "))
	}
	req, err := c.endpoint.formRequest(ctx, deviceAuthURL, form, rec.ClientID, rec.ClientSecret)
	if err != nil {
		return nil, err
	}
	sent := c.cfg.Now()
	resp, body, err := c.endpoint.send(req)
	if err != nil {
		return nil, maskSecrets(err, recordSecrets(rec))
	}
	where := redactURL(req.URL)
	if resp.StatusCode/100 != 2 {
		// An RFC 6749 §5.2 error answer (RFC 8628 §3.2), or no OAuth
		// endpoint at all: the token endpoint's reading says which.
		_, err := parseAnswer(where, resp, body)
		if err == nil {
			err = &EndpointError{URL: where, StatusCode: resp.StatusCode, Response: resp}
		}
		return nil, maskSecrets(err, recordSecrets(rec))
	}
	var dr deviceResponse
	if err := json.Unmarshal(body, &dr); err != nil || dr.DeviceCode == "" || dr.UserCode == "" || (dr.VerificationURI == "" && dr.VerificationURL == "") {
		return nil, &EndpointError{URL: where, StatusCode: resp.StatusCode, Response: resp, ContentType: resp.Header.Get("Content-Type"), Err: ErrNotTokenEndpoint,
			Description: "not a device authorization response (device_code, user_code, verification_uri)"}
	}
	da := &DeviceAuth{
		DeviceCode:              secret.Secret(dr.DeviceCode),
		UserCode:                dr.UserCode,
		VerificationURI:         dr.VerificationURI,
		VerificationURIComplete: dr.VerificationURIComplete,
		Interval:                time.Duration(dr.Interval) * time.Second,
	}
	if da.VerificationURI == "" {
		da.VerificationURI = dr.VerificationURL
	}
	if da.Interval <= 0 {
		da.Interval = defaultDeviceInterval
	}
	if dr.ExpiresIn > 0 {
		da.Expiry = sent.Add(time.Duration(dr.ExpiresIn) * time.Second)
	}
	return da, nil
}

// ExchangeDevice polls the profile's token endpoint with da's device code
// (RFC 8628 §3.4) until the user approves or denies it, it expires, or ctx
// ends, then stores the tokens in the profile as a new grant, replacing any
// it had. It waits da.Interval between polls, five seconds more after each
// slow_down, and waits out a few temporary failures with a growing pause.
// A denial matches ErrAccessDenied, an expired code ErrDeviceCodeExpired.
func (c *Credentials) ExchangeDevice(ctx context.Context, da *DeviceAuth) (*Token, error) {
	rec, err := c.deviceRecord(ctx)
	if err != nil {
		return nil, err
	}
	interval := max(da.Interval, time.Second)
	failures := 0
	for {
		wait := interval << min(failures, 4)
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, fmt.Errorf("credentials: waiting for the device authorization to be approved: %w", ctx.Err())
		case <-timer.C:
		}
		if !da.Expiry.IsZero() && !c.cfg.Now().Before(da.Expiry) {
			return nil, ErrDeviceCodeExpired
		}
		form := url.Values{"grant_type": {GrantTypeDeviceCode}, "device_code": {da.DeviceCode.Reveal()}}
		sent := c.cfg.Now()
		tr, err := c.endpoint.postForm(ctx, rec.TokenURL, form, rec.ClientID, rec.ClientSecret)
		if err == nil {
			got, err := tr.result(sent)
			if err != nil {
				return nil, err
			}
			return c.storeGrant(ctx, got, sent)
		}
		if ctx.Err() != nil {
			return nil, err
		}
		var ee *EndpointError
		if !errors.As(err, &ee) {
			return nil, err
		}
		switch ee.Code {
		case "authorization_pending":
			failures = 0
			continue
		case "slow_down":
			failures = 0
			interval += slowDownStep
			continue
		case "access_denied":
			return nil, fmt.Errorf("%w: %w", ErrAccessDenied, err)
		case "expired_token":
			return nil, fmt.Errorf("%w: %w", ErrDeviceCodeExpired, err)
		}
		if !ee.Temporary() || failures >= maxPollFailures {
			return nil, err
		}
		// RFC 8628 §3.5: back off after a failure to get an answer.
		failures++
		if ee.RetryAfter > 0 {
			interval = max(interval, ee.RetryAfter)
		}
	}
}

// deviceRecord loads the profile and checks that it can take part in the
// device flow: an RFC 6749 client with a token URL.
func (c *Credentials) deviceRecord(ctx context.Context) (*storage.Record, error) {
	rec, _, err := c.store.Load(ctx, c.cfg.Profile)
	if err != nil {
		return nil, fmt.Errorf("credentials: profile %q: %w", c.cfg.Profile, err)
	}
	var missing []string
	if rec.ClientID == "" {
		missing = append(missing, "client_id")
	}
	if rec.TokenURL == "" {
		missing = append(missing, "token_url")
	}
	if len(missing) > 0 {
		return nil, &PartialCredentialsError{Profile: c.cfg.Profile, Missing: missing}
	}
	if rec.Flavor != "" && rec.Flavor != FlavorOAuth2 {
		return nil, fmt.Errorf("credentials: profile %q: the device authorization grant is RFC 6749's; flavor %q has none", c.cfg.Profile, rec.Flavor)
	}
	return rec, nil
}
