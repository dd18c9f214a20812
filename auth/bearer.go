package auth

import (
	"context"
	"net/http"
	"strings"

	"golang.org/x/oauth2"

	"github.com/tokencache/tokencache/secret"
)

func init() { registerConfig("bearer", NewBearer) }

// BearerConfig configures a static token, one that does not expire or is
// replaced by redeploying: a personal access token, a service token.
type BearerConfig struct {
	Token secret.Secret `json:"token"`
	// Header is the header to set; default Authorization.
	Header string `json:"header"`
	// Format is the header value with {} where the token goes; default "Bearer {}".
	Format string `json:"format"`
}

// Bearer sends a fixed token.
type Bearer struct {
	printable
	token          secret.Secret
	header, format string
}

// NewBearer returns a Bearer authorizer.
func NewBearer(c BearerConfig, env Env) (*Bearer, error) {
	const scheme = "bearer"
	if c.Token == "" {
		return nil, &OptionError{Scheme: scheme, Option: "token", Reason: "required"}
	}
	header, format, err := headerOptions(scheme, c.Header, c.Format)
	if err != nil {
		return nil, err
	}
	newSecrets(env.Masker, scheme).set("token", c.Token)
	return &Bearer{printable: printable{"Bearer"}, token: c.Token, header: header, format: format}, nil
}

// Authorize sets the header.
func (b *Bearer) Authorize(_ context.Context, req *http.Request) error {
	req.Header.Set(b.header, formatHeader(b.format, b.token.Reveal()))
	return nil
}

// TokenSource returns the token for golang.org/x/oauth2.
func (b *Bearer) TokenSource(context.Context) oauth2.TokenSource {
	return oauth2.StaticTokenSource(&oauth2.Token{AccessToken: b.token.Reveal(), TokenType: tokenType(b.format, "")})
}

// headerOptions validates and defaults a header name and value format.
func headerOptions(scheme, header, format string) (string, string, error) {
	if header == "" {
		header = "Authorization"
	}
	if !validHeaderName(header) {
		return "", "", &OptionError{Scheme: scheme, Option: "header", Reason: "not a valid header name"}
	}
	if format != "" && strings.Count(format, "{}") != 1 {
		return "", "", &OptionError{Scheme: scheme, Option: "format", Reason: "must contain {} once, where the token goes"}
	}
	if format == "" {
		format = "Bearer {}"
	}
	return header, format, nil
}

// tokenType is the OAuth token type a header format implies ("Bearer {}"
// -> "Bearer"), or fallback when the format is not "<type> {}".
func tokenType(format, fallback string) string {
	if typ, ok := strings.CutSuffix(format, " {}"); ok && !strings.ContainsAny(typ, " {}") {
		return typ
	}
	return fallback
}
