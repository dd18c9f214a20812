// Package auth authorizes outgoing HTTP requests with any of the schemes
// tokencache serves: none, HTTP Basic, API keys, static bearer tokens,
// OAuth 2.0 refresh-token, client-credentials and password grants, custom
// token endpoints, ThreatConnect token renewal and HMAC signatures,
// ES512 self-signed JWTs, and Amazon Cognito user pool logins with SRP.
// The "sl1" scheme takes an SL1 low-code credential (authType,
// oauth2ClientId, tokenKey ...) as it stands and maps it onto these.
//
// Every scheme is an httpauth.Authorizer, one method in the style of
// database/sql/driver: it sets what the server needs on a request that is
// about to leave. httpauth.Transport runs it just before sending, which
// HMAC signatures need, since they cover the final URL and a timestamp.
//
// Schemes that obtain tokens from an endpoint are credentials.Grant
// implementations run by a credentials.Credentials, so their tokens are
// cached in a storage.Store and every process sharing the store reuses one
// token per expiry; Env.Store chooses the store.
//
// A scheme is chosen by name with New, as configuration names it; Register
// adds schemes. Secrets are secret.Secret values in every config, and a
// secret.Masker given in Env, which schemes register their secrets and
// tokens with, scrubs log output (Masker.Handler) and error text.
//
// The zero Env caches tokens in a private storage/memory store, so that a
// scheme works with no store configured. That import is the one concrete
// store this package knows; it is part of this module, adds nothing to a
// program's dependencies, and Env.Store replaces it with any other.
package auth

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/internal/httpsafe"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/memory"
)

// Env is what schemes take from their surroundings. The zero value works:
// tokens are cached in a private in-memory store, nothing is logged and no
// Masker is fed.
type Env struct {
	// Store caches the tokens of endpoint schemes. Processes that share a
	// store share tokens; default: an in-memory store of the authorizer's own.
	Store *storage.Store
	// Profile names the scheme's record in Store; default: the scheme name.
	// Give each authorizer sharing a store its own profile.
	Profile string
	// HTTPClient calls token endpoints; default: a client with a 30 s timeout.
	HTTPClient *http.Client
	// Logger receives debug events; nil means silent. When Masker is set
	// the logger's output is masked with it.
	Logger *slog.Logger
	// Masker learns every secret and token the scheme holds.
	Masker *secret.Masker
	// Credentials tunes the refresh protocol of endpoint schemes (Skew,
	// RenewAhead, LeaseTTL, retries, journal, clock, telemetry). It is a
	// whole credentials.Config, not a copy of its tuning fields, so that
	// every knob package credentials has is a knob here too. The fields
	// that Env and the scheme own are left zero, or equal to Env's:
	// Store, Profile, HTTPClient and Logger come from Env, Grant and
	// AuthStyle from the scheme (its client_auth option), and a scheme's
	// constructor refuses a Credentials that sets one of them otherwise
	// rather than override it.
	Credentials credentials.Config
	// Now is the clock of the schemes that keep time themselves (HMAC
	// timestamps, JWT claims); default time.Now.
	Now func() time.Time
}

// checkCredentials refuses an Env.Credentials that sets a field Env or the
// scheme owns to something else (see Env.Credentials).
func (e Env) checkCredentials(scheme string, style credentials.AuthStyle) error {
	c := e.Credentials
	var owned []string
	if c.Store != nil && c.Store != e.Store {
		owned = append(owned, "Store (set Env.Store)")
	}
	if c.Profile != "" && c.Profile != e.Profile {
		owned = append(owned, "Profile (set Env.Profile)")
	}
	if c.HTTPClient != nil && c.HTTPClient != e.HTTPClient {
		owned = append(owned, "HTTPClient (set Env.HTTPClient)")
	}
	if c.Logger != nil && c.Logger != e.Logger {
		owned = append(owned, "Logger (set Env.Logger)")
	}
	if c.Grant != nil {
		owned = append(owned, "Grant (the scheme's)")
	}
	if style == "" {
		style = credentials.AuthBasic // the default either way
	}
	if c.AuthStyle != "" && c.AuthStyle != style {
		owned = append(owned, "AuthStyle (the scheme's client_auth option)")
	}
	if len(owned) > 0 {
		return fmt.Errorf("auth: %s: Env.Credentials sets fields Env or the scheme owns: %s", scheme, strings.Join(owned, ", "))
	}
	return nil
}

// resolve fills in defaults; ownStore reports whether the store was made
// here, so the authorizer closes it.
func (e Env) resolve(scheme string) (env Env, ownStore bool) {
	if e.Profile == "" {
		e.Profile = scheme
	}
	e.HTTPClient = e.client()
	if e.Now == nil {
		e.Now = time.Now
	}
	if e.Logger == nil {
		e.Logger = slog.New(slog.DiscardHandler)
	} else if e.Masker != nil {
		e.Logger = slog.New(e.Masker.Handler(e.Logger.Handler()))
	}
	e.Logger = e.Logger.With("scheme", scheme)
	if e.Store == nil {
		e.Store, ownStore = storage.NewStore(memory.New(nil)), true
	}
	return e, ownStore
}

// client is what token requests go through: it never follows a redirect,
// which would send the credentials again to wherever it points.
func (e Env) client() *http.Client {
	if e.HTTPClient != nil {
		return httpsafe.NoRedirects(e.HTTPClient)
	}
	return defaultClient
}

// grantClient is the client a Grant built from a caller's client calls
// with: the caller's client may follow redirects, which would send the
// grant's credentials again to wherever one points. nil means
// defaultClient.
func grantClient(c *http.Client) *http.Client {
	if c == nil {
		return defaultClient
	}
	return httpsafe.NoRedirects(c)
}

// defaultClient bounds a call the context does not bound.
var defaultClient = httpsafe.NoRedirects(&http.Client{Timeout: 30 * time.Second})

// secrets registers one authorizer's secrets with a Masker under keys of
// its own, so that two authorizers never replace each other's values.
type secrets struct {
	m      *secret.Masker
	prefix string
}

func newSecrets(m *secret.Masker, scheme string) secrets {
	return secrets{m: m, prefix: scheme + "/" + strings.ToLower(rand.Text()[:8]) + "/"}
}

func (s secrets) set(key string, values ...secret.Secret) {
	if s.m != nil {
		s.m.Set(s.prefix+key, values...)
	}
}

func (s secrets) forget() {
	if s.m != nil {
		s.m.RemovePrefix(s.prefix)
	}
}

// printable gives a scheme type String and GoString methods. Without them
// %v of a *Scheme would print its unexported fields, and fmt does not call
// String on unexported fields, so a secret.Secret there would print raw.
type printable struct{ name string }

func (p printable) String() string   { return "auth." + p.name }
func (p printable) GoString() string { return "auth." + p.name + "{…}" }

// formatHeader puts value where format has "{}".
func formatHeader(format, value string) string {
	return strings.ReplaceAll(format, "{}", value)
}
