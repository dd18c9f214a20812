package auth

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"

	"golang.org/x/oauth2"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
)

// TokenAuthorizer sends an access token that a credentials.Credentials
// keeps: every endpoint scheme (refresh token, client credentials,
// password, token endpoint, ThreatConnect token) is one, differing only in
// the Grant that obtains the token. Tokens are cached in Env.Store and
// shared by all processes using it.
type TokenAuthorizer struct {
	printable
	scheme   string
	creds    *credentials.Credentials
	header   string
	format   string // "" means the token's own type, "Bearer <token>"
	password bool   // invalid_grant means the user's password
	// trackRefresh: the refresh token rotates inside credentials, out of
	// sight; read it from the store whenever the access token changes.
	trackRefresh bool
	store        *storage.Store
	secrets      secrets
	masker       *secret.Masker
	closers      []func() error

	last atomic.Pointer[credentials.Token] // last token registered with the Masker

	// clientID and username name the client and user in errors, as
	// en_auth's InvalidClientError and InvalidCredentialsError carry them.
	clientID, username string
	// extra are headers set beside the token: an API key, fixed headers.
	extra http.Header

	// ensure prepares the store's record once before the first token.
	ensure   func(context.Context) error
	ensureMu sync.Mutex
	ensured  atomic.Bool
}

// FromCredentials returns an authorizer that sends c's tokens in the
// Authorization header. Closing it does not close c.
func FromCredentials(c *credentials.Credentials, env Env) *TokenAuthorizer {
	return &TokenAuthorizer{printable: printable{"TokenAuthorizer"}, scheme: "credentials", creds: c,
		header: "Authorization", secrets: newSecrets(env.Masker, "credentials"), masker: env.Masker}
}

// tokenOptions are what an endpoint scheme hands newTokenAuthorizer.
type tokenOptions struct {
	scheme         string
	grant          credentials.Grant     // nil: the refresh-token grant
	authStyle      credentials.AuthStyle // the client_auth option; set by grant schemes too, for checkCredentials
	header, format string
	password       bool
	trackRefresh   bool
	ensure         func(ctx context.Context, rec *storage.Record, exists bool) (write bool, err error)
	secrets        map[string][]secret.Secret // for the Masker
	configure      func(*credentials.Config)
	// clientID and username are named in the errors; extra headers go
	// beside the token on every request.
	clientID, username string
	extra              http.Header
}

func newTokenAuthorizer(env Env, o tokenOptions) (*TokenAuthorizer, error) {
	if err := env.checkCredentials(o.scheme, o.authStyle); err != nil {
		return nil, err
	}
	env, ownStore := env.resolve(o.scheme)
	cfg := env.Credentials
	cfg.Store, cfg.Profile, cfg.Grant = env.Store, env.Profile, o.grant
	if o.grant != nil && len(o.secrets) > 0 {
		cfg.Grant = heldSecrets{o.grant, slices.Concat(slices.Collect(maps.Values(o.secrets))...)}
	}
	cfg.HTTPClient, cfg.Logger, cfg.AuthStyle = env.HTTPClient, env.Logger, o.authStyle
	if o.configure != nil {
		o.configure(&cfg)
	}
	creds, err := credentials.New(cfg)
	if err != nil {
		if ownStore {
			env.Store.Close()
		}
		return nil, err
	}
	a := &TokenAuthorizer{printable: printable{"TokenAuthorizer"}, scheme: o.scheme, creds: creds,
		header: o.header, format: o.format, password: o.password,
		trackRefresh: o.trackRefresh, store: env.Store, clientID: o.clientID, username: o.username, extra: o.extra,
		secrets: newSecrets(env.Masker, o.scheme), masker: env.Masker,
		closers: []func() error{creds.Close}}
	if ownStore {
		a.closers = append(a.closers, env.Store.Close)
	}
	for k, v := range o.secrets {
		a.secrets.set(k, v...)
	}
	if o.ensure != nil {
		fit := o.ensure
		if o.trackRefresh {
			fit = func(ctx context.Context, rec *storage.Record, exists bool) (bool, error) {
				write, err := o.ensure(ctx, rec, exists)
				// The first refresh spends what the store holds.
				a.secrets.set("refresh_token", rec.RefreshToken)
				a.secrets.set("stored_client_secret", clientSecrets(rec.ClientID, rec.ClientSecret)...)
				return write, err
			}
		}
		a.ensure = func(ctx context.Context) error { return ensureRecord(ctx, env.Store, env.Profile, fit) }
	}
	return a, nil
}

// heldSecrets tells Credentials which secrets a scheme's grant holds (see
// credentials.SecretHolder), so that a token endpoint echoing one in its
// error_description puts it into no error and no span, Masker or not.
type heldSecrets struct {
	credentials.Grant
	secrets []secret.Secret
}

func (g heldSecrets) Secrets() []secret.Secret { return g.secrets }

// cleared reports whether rec holds no credentials, endpoint or scheme.
func cleared(rec *storage.Record) bool {
	return rec.Scheme == "" && rec.ClientID == "" && rec.TokenURL == "" && rec.RefreshToken == "" && rec.AccessToken == "" && rec.ClientSecret == ""
}

// ensureRecord lets fit check or seed the profile's record; fit reports
// whether it changed it. Grants need a record to exist, since the refresh
// protocol leases it; creating it conditionally keeps replicas that start
// together from overwriting each other.
func ensureRecord(ctx context.Context, st *storage.Store, profile string,
	fit func(ctx context.Context, rec *storage.Record, exists bool) (bool, error)) error {
	for {
		cur, rev, err := st.Load(ctx, profile)
		exists := err == nil
		rec := &storage.Record{Profile: profile}
		switch {
		case exists:
			rec = cur.Clone()
			// A profile cleared of everything but its lineage (a forced
			// re-initialisation) is set up afresh; the lineage stays, so
			// the tokens it held are never taken back.
			exists = !cleared(cur)
		case errors.Is(err, storage.ErrNotFound):
			cur = nil
		default:
			return err
		}
		write, err := fit(ctx, rec, exists)
		if err != nil || !write {
			return err
		}
		if _, err = st.Replace(ctx, cur, rev, rec); !errors.Is(err, storage.ErrConflict) {
			return err
		}
	}
}

// mapError is the package's mapError, naming the client and user.
func (a *TokenAuthorizer) mapError(password bool, err error) error {
	err = mapError(a.scheme, a.masker, password, err)
	if ae, ok := err.(*AuthorizationError); ok {
		ae.ClientID, ae.Username = a.clientID, a.username
	}
	return err
}

// Credentials returns the credentials that keep the token.
func (a *TokenAuthorizer) Credentials() *credentials.Credentials { return a.creds }

func (a *TokenAuthorizer) ready(ctx context.Context) error {
	if a.ensure == nil || a.ensured.Load() {
		return nil
	}
	a.ensureMu.Lock()
	defer a.ensureMu.Unlock()
	if a.ensured.Load() {
		return nil
	}
	if err := a.ensure(ctx); err != nil {
		return a.mapError(false, fmt.Errorf("preparing profile %q: %w", a.creds.Profile(), err))
	}
	a.ensured.Store(true)
	return nil
}

// Token returns the current token, obtaining it if needed.
func (a *TokenAuthorizer) Token(ctx context.Context) (*credentials.Token, error) {
	if err := a.ready(ctx); err != nil {
		return nil, err
	}
	t, err := a.creds.Token(ctx)
	if err != nil {
		return nil, a.mapError(a.password, err)
	}
	a.observe(ctx, t)
	return t, nil
}

// observe registers a new token with the Masker before it is handed out.
func (a *TokenAuthorizer) observe(ctx context.Context, t *credentials.Token) {
	if a.last.Load() == t {
		return
	}
	a.secrets.set("token", t.AccessToken)
	if a.trackRefresh && a.masker != nil {
		if rec, _, err := a.store.Load(ctx, a.creds.Profile()); err == nil {
			a.secrets.set("refresh_token", rec.RefreshToken)
		}
	}
	a.last.Store(t)
}

func (a *TokenAuthorizer) value(t *credentials.Token) string {
	if a.format == "" {
		return t.AuthorizationHeader()
	}
	return formatHeader(a.format, t.AccessToken.Reveal())
}

// Authorize sets the token's header.
func (a *TokenAuthorizer) Authorize(ctx context.Context, req *http.Request) error {
	t, err := a.Token(ctx)
	if err != nil {
		return err
	}
	req.Header.Set(a.header, a.value(t))
	for k, v := range a.extra {
		req.Header[k] = slices.Clone(v)
	}
	return nil
}

// Renew implements Renewer: it replaces the token refused carried if that
// is still the current one.
func (a *TokenAuthorizer) Renew(ctx context.Context, refused *http.Request) (bool, error) {
	cur, err := a.Token(ctx)
	if err != nil {
		return false, err
	}
	if a.value(cur) != refused.Header.Get(a.header) {
		return true, nil // already replaced since refused was sent
	}
	fresh, err := a.creds.Refresh(ctx, cur)
	if err != nil {
		return false, a.mapError(a.password, err)
	}
	a.observe(ctx, fresh)
	return fresh.AccessToken != cur.AccessToken, nil
}

// TokenSource returns the tokens for golang.org/x/oauth2.
func (a *TokenAuthorizer) TokenSource(ctx context.Context) oauth2.TokenSource {
	return tokenSourceFunc(func() (*oauth2.Token, error) {
		t, err := a.Token(ctx)
		if err != nil {
			return nil, err
		}
		typ := t.TokenType
		if a.format != "" {
			typ = tokenType(a.format, typ)
		}
		return &oauth2.Token{AccessToken: t.AccessToken.Reveal(), TokenType: typ, Expiry: t.Expiry}, nil
	})
}

type tokenSourceFunc func() (*oauth2.Token, error)

func (f tokenSourceFunc) Token() (*oauth2.Token, error) { return f() }

// Close stops background renewal, closes a store the authorizer made, and
// makes the Masker forget its secrets.
func (a *TokenAuthorizer) Close() error {
	var errs []error
	for _, c := range a.closers {
		errs = append(errs, c())
	}
	a.secrets.forget()
	return errors.Join(errs...)
}
