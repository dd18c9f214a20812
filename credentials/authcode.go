package credentials

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	crand "crypto/rand"

	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
)

// AuthRequest is the first leg of the authorization code flow (RFC 6749
// §4.1) with PKCE (RFC 7636, S256): send the user to URL, then check that
// the redirect carries State and pass its code and Verifier to Exchange.
type AuthRequest struct {
	URL      string
	State    string
	Verifier secret.Secret
}

// NewAuthRequest builds an authorization URL with a random state and a
// PKCE S256 challenge.
func NewAuthRequest(authorizeURL, clientID, redirectURI string, scopes ...string) (*AuthRequest, error) {
	u, err := url.Parse(authorizeURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("credentials: authorization URL %q is not an absolute URL", authorizeURL)
	}
	state, verifier := randomToken(16), randomToken(32)
	sum := sha256.Sum256([]byte(verifier))
	q := u.Query()
	q.Set("response_type", "code")
	q.Set("client_id", clientID)
	q.Set("redirect_uri", redirectURI)
	q.Set("state", state)
	q.Set("code_challenge", base64.RawURLEncoding.EncodeToString(sum[:]))
	q.Set("code_challenge_method", "S256")
	if len(scopes) > 0 {
		q.Set("scope", strings.Join(scopes, " "))
	}
	u.RawQuery = q.Encode()
	return &AuthRequest{URL: u.String(), State: state, Verifier: secret.Secret(verifier)}, nil
}

// Exchange redeems an authorization code at the profile's token URL and
// stores the tokens in the profile, replacing any it had. The profile must
// already hold client_id, client_secret and token_url.
func (c *Credentials) Exchange(ctx context.Context, code string, verifier secret.Secret, redirectURI string) (*Token, error) {
	rec, _, err := c.store.Load(ctx, c.cfg.Profile)
	if err != nil {
		return nil, fmt.Errorf("credentials: profile %q: %w", c.cfg.Profile, err)
	}
	if rec.ClientID == "" || rec.TokenURL == "" {
		return nil, &PartialCredentialsError{Profile: c.cfg.Profile, Missing: []string{"client_id", "token_url"}}
	}
	f, err := flavorOf(c.cfg.Profile, rec)
	if err != nil {
		return nil, err
	}
	sent := c.cfg.Now()
	var got *Tokens
	if f != nil {
		got, err = f.Exchange(ctx, c.endpoint.client, rec, code, verifier, redirectURI)
	} else {
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}}
		if verifier != "" {
			form.Set("code_verifier", verifier.Reveal())
		}
		var tr *tokenResponse
		if tr, err = c.endpoint.postForm(ctx, rec.TokenURL, form, rec.ClientID, rec.ClientSecret); err == nil {
			got, err = tr.result(sent)
		}
	}
	if err != nil {
		return nil, maskSecrets(err, append(recordSecrets(rec), secret.Secret(code), verifier))
	}
	return c.storeGrant(ctx, got, sent)
}

// storeGrant stores the tokens of a new authorization (a code or device
// exchange), obtained by a request sent at sent, as the profile's grant.
func (c *Credentials) storeGrant(ctx context.Context, got *Tokens, sent time.Time) (*Token, error) {
	var saved *storage.Record
	err := c.update(ctx, func(r *storage.Record) error {
		saved = r
		r.AccessToken, r.TokenType, r.Expiry, r.IssuedAt = got.AccessToken, got.TokenType, got.Expiry, sent.UTC()
		// An authorization is a new grant: it replaces whatever the
		// profile held, whichever grant that was.
		r.Grant(got.RefreshToken.Reveal())
		r.Lease = nil
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("credentials: profile %q: storing exchanged tokens: %w", c.cfg.Profile, err)
	}
	c.mu.Lock()
	c.deadRT = ""
	c.mu.Unlock()
	t := c.tokenFrom(saved, c.cfg.Now())
	c.cur.Store(t)
	return t, nil
}

// Revoke revokes the profile's refresh and access tokens at the server
// (RFC 7009 at revokeURL, or as the record's flavor revokes) and removes
// them from the store.
func (c *Credentials) Revoke(ctx context.Context, revokeURL string) error {
	rec, _, err := c.store.Load(ctx, c.cfg.Profile)
	if err != nil {
		return fmt.Errorf("credentials: profile %q: %w", c.cfg.Profile, err)
	}
	f, err := flavorOf(c.cfg.Profile, rec)
	if err != nil {
		return err
	}
	var errs []error
	for _, tok := range []struct {
		value secret.Secret
		hint  string
	}{{rec.RefreshToken, "refresh_token"}, {rec.AccessToken, "access_token"}} {
		if tok.value == "" {
			continue
		}
		if f != nil {
			err = f.Revoke(ctx, c.endpoint.client, rec, tok.value, tok.hint, revokeURL)
		} else {
			if revokeURL == "" {
				return errors.New("credentials: no revocation URL")
			}
			_, err = c.endpoint.postForm(ctx, revokeURL, url.Values{"token": {tok.value.Reveal()}, "token_type_hint": {tok.hint}}, rec.ClientID, rec.ClientSecret)
		}
		if err != nil {
			errs = append(errs, maskSecrets(err, recordSecrets(rec)))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	err = c.update(ctx, func(r *storage.Record) error {
		r.AccessToken, r.Expiry, r.Lease = "", time.Time{}, nil
		r.Grant("") // the revoked grant is never taken back
		return nil
	})
	c.cur.Store(nil)
	return err
}

func randomToken(n int) string {
	b := make([]byte, n)
	crand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
