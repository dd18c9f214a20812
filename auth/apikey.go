package auth

import (
	"context"
	"net/http"
	"strings"

	"github.com/tokencache/tokencache/secret"
)

func init() { registerConfig("api_key", NewAPIKey) }

// DefaultAPIKeyHeader is the header an API key goes in unless configured,
// as en_auth's ClientInfo sends it.
const DefaultAPIKeyHeader = "X-Api-Key"

// APIKeyConfig configures a static API key sent in a header or a query
// parameter, with an optional prefix and suffix (SL1's AuthApiKey).
type APIKeyConfig struct {
	Key secret.Secret `json:"key"`
	// Header is the header to set; default X-Api-Key unless Query is set.
	Header string `json:"header"`
	// Query names a query parameter to carry the key instead of a header.
	Query  string `json:"query"`
	Prefix string `json:"prefix"`
	Suffix string `json:"suffix"`
}

// APIKey sends a fixed key with every request.
type APIKey struct {
	printable
	header, query string
	value         secret.Secret
}

// NewAPIKey returns an APIKey authorizer.
func NewAPIKey(c APIKeyConfig, env Env) (*APIKey, error) {
	const scheme = "api_key"
	switch {
	case c.Key == "":
		return nil, &OptionError{Scheme: scheme, Option: "key", Reason: "required"}
	case c.Header != "" && c.Query != "":
		return nil, &OptionError{Scheme: scheme, Option: "query", Reason: "set header or query, not both"}
	case c.Header == "" && c.Query == "":
		c.Header = DefaultAPIKeyHeader
	}
	if c.Header != "" && !validHeaderName(c.Header) {
		return nil, &OptionError{Scheme: scheme, Option: "header", Reason: "not a valid header name"}
	}
	a := &APIKey{printable: printable{"APIKey"}, header: c.Header, query: c.Query,
		value: secret.Secret(c.Prefix + c.Key.Reveal() + c.Suffix)}
	newSecrets(env.Masker, scheme).set("key", c.Key, a.value)
	return a, nil
}

// Authorize sets the header or the query parameter.
func (a *APIKey) Authorize(_ context.Context, req *http.Request) error {
	if a.query == "" {
		req.Header.Set(a.header, a.value.Reveal())
		return nil
	}
	q := req.URL.Query()
	q.Set(a.query, a.value.Reveal())
	req.URL.RawQuery = q.Encode()
	return nil
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r >= 0x7f || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return true
}
