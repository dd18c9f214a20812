package pancloud

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
)

// flavor is pancloud's token endpoint dialect: every request is a JSON
// object posted under the record's base URL, the client authenticating
// with client_id and client_secret members.
type flavor struct{}

// Refresh implements credentials.Flavor.
func (flavor) Refresh(ctx context.Context, client *http.Client, rec *storage.Record) (*credentials.Tokens, error) {
	req, err := jsonRequest(ctx, RequestTokenURL(rec.TokenURL), map[string]string{
		"client_id":     rec.ClientID,
		"client_secret": rec.ClientSecret.Reveal(),
		"refresh_token": rec.RefreshToken.Reveal(),
		"grant_type":    "refresh_token",
	}, "")
	if err != nil {
		return nil, err
	}
	return credentials.DoTokenRequest(client, req)
}

// Exchange implements credentials.Flavor: pancloud's fetch_tokens, the
// code in the same JSON body as its refresh.
func (flavor) Exchange(ctx context.Context, client *http.Client, rec *storage.Record, code string, verifier secret.Secret, redirectURI string) (*credentials.Tokens, error) {
	body := map[string]string{
		"client_id":     rec.ClientID,
		"client_secret": rec.ClientSecret.Reveal(),
		"code":          code,
		"redirect_uri":  redirectURI,
		"grant_type":    "authorization_code",
	}
	if verifier != "" {
		body["code_verifier"] = verifier.Reveal()
	}
	req, err := jsonRequest(ctx, RequestTokenURL(rec.TokenURL), body, "")
	if err != nil {
		return nil, err
	}
	return credentials.DoTokenRequest(client, req)
}

// Revoke implements credentials.Flavor; revokeURL is not needed: the
// endpoint is under the record's base URL.
func (flavor) Revoke(ctx context.Context, client *http.Client, rec *storage.Record, token secret.Secret, hint, _ string) error {
	req, err := jsonRequest(ctx, RevokeTokenURL(rec.TokenURL), map[string]string{
		"client_id":       rec.ClientID,
		"client_secret":   rec.ClientSecret.Reveal(),
		"token":           token.Reveal(),
		"token_type_hint": hint,
	}, "")
	if err != nil {
		return err
	}
	return credentials.DoRevocation(client, req)
}

// Missing implements credentials.Flavor: pancloud's endpoint knows only
// confidential clients, so the secret is needed too.
func (flavor) Missing(rec *storage.Record) []string {
	var missing []string
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"client_id", rec.ClientID != ""},
		{"client_secret", rec.ClientSecret != ""},
		{"refresh_token", rec.RefreshToken != ""},
		{"token_url", rec.TokenURL != ""},
	} {
		if !f.set {
			missing = append(missing, f.name)
		}
	}
	return missing
}

// jsonRequest builds a POST of body as JSON; bearer, when set, is the
// request's Bearer credential.
func jsonRequest(ctx context.Context, u string, body any, bearer secret.Secret) (*http.Request, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	if err != nil {
		// The URL may carry a secret in its query: say which, redacted.
		return nil, fmt.Errorf("pancloud: endpoint URL %q: %w", secret.RedactURL(u), errors.Unwrap(err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer.Reveal())
	}
	return req, nil
}
