package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
)

func init() { registerConfig("token_endpoint", NewTokenEndpoint) }

// TokenEndpointConfig configures a token from a custom endpoint, SL1's
// AuthToken: the client logs in at URL and reads the token from the
// JSON answer. Assumptions where SL1 is silent: the login is a POST
// (Method changes it) that carries Username and Password as HTTP Basic, or
// as a JSON object {"username":…,"password":…} when Login is "json".
type TokenEndpointConfig struct {
	URL      string        `json:"url"`
	Method   string        `json:"method"`
	Login    string        `json:"login"` // "basic" (default) or "json"
	Username string        `json:"username"`
	Password secret.Secret `json:"password"`
	// TokenPath is where the token is in the answer, a dotted path such
	// as "data.token" (array elements by index); default "access_token".
	TokenPath string `json:"token_path"`
	// Header and Format place the token; default Authorization and "Bearer {}".
	Header string `json:"header"`
	Format string `json:"format"`
	// ExpiresInPath is where the token's lifetime in seconds is; default
	// "expires_in". When it is absent, or StaticTTL is set, TTL applies.
	ExpiresInPath string        `json:"expires_in_path"`
	TTL           time.Duration `json:"ttl"` // default 3600 s
	StaticTTL     bool          `json:"static_ttl"`
	// RetryWait is how long after a failed login no new attempt is made
	// (SL1's timeToNextRequest); default 60 s. Callers get the last
	// error meanwhile.
	RetryWait time.Duration `json:"retry_wait"`
}

const tokenEndpointScheme = "token_endpoint"

func (c *TokenEndpointConfig) validate() error {
	opt := func(name, reason string) error {
		return &OptionError{Scheme: tokenEndpointScheme, Option: name, Reason: reason}
	}
	if u, err := url.Parse(c.URL); c.URL == "" || err != nil || !u.IsAbs() {
		return opt("url", "want an absolute URL")
	}
	if c.Method == "" {
		c.Method = http.MethodPost
	}
	if c.Method != http.MethodPost && c.Method != http.MethodGet && c.Method != http.MethodPut {
		return opt("method", "want GET, POST or PUT")
	}
	switch c.Login {
	case "":
		c.Login = "basic"
	case "basic", "json":
	default:
		return opt("login", `want "basic" or "json"`)
	}
	if c.Password != "" && c.Username == "" {
		return opt("username", "required with password")
	}
	if c.TokenPath == "" {
		c.TokenPath = "access_token"
	}
	if c.ExpiresInPath == "" {
		c.ExpiresInPath = "expires_in"
	}
	if c.TTL == 0 {
		c.TTL = time.Hour
	}
	if c.TTL < time.Second {
		return opt("ttl", "must be at least 1s")
	}
	if c.RetryWait == 0 {
		c.RetryWait = time.Minute
	}
	return nil
}

// Grant returns the grant, for use in a credentials.Config of your own.
func (c TokenEndpointConfig) Grant(client *http.Client) (credentials.Grant, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	client = grantClient(client)
	return &tokenEndpointGrant{cfg: c, client: client, now: time.Now}, nil
}

type tokenEndpointGrant struct {
	cfg    TokenEndpointConfig
	client *http.Client
	now    func() time.Time

	mu        sync.Mutex
	failed    error
	waitUntil time.Time
}

// Obtain implements credentials.Grant.
func (g *tokenEndpointGrant) Obtain(ctx context.Context, _ *storage.Record) (*credentials.Tokens, error) {
	g.mu.Lock()
	if err, until := g.failed, g.waitUntil; err != nil && g.now().Before(until) {
		g.mu.Unlock()
		return nil, err
	}
	g.mu.Unlock()
	t, err := g.login(ctx)
	if err != nil && ctx.Err() == nil {
		g.mu.Lock()
		g.failed, g.waitUntil = err, g.now().Add(g.cfg.RetryWait)
		g.mu.Unlock()
	}
	return t, err
}

func (g *tokenEndpointGrant) login(ctx context.Context) (*credentials.Tokens, error) {
	c := &g.cfg
	var body io.Reader
	if c.Login == "json" {
		b, _ := json.Marshal(map[string]string{"username": c.Username, "password": c.Password.Reveal()})
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, c.Method, c.URL, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if c.Login == "json" {
		req.Header.Set("Content-Type", "application/json")
	} else if c.Username != "" {
		req.SetBasicAuth(c.Username, c.Password.Reveal())
	}
	sent := g.now()
	doc, err := getJSON(g.client, req)
	if err != nil {
		return nil, err
	}
	tok, ok := lookup(doc, c.TokenPath).(string)
	if !ok || tok == "" {
		return nil, malformed(req, fmt.Sprintf("no string at %q in the response", c.TokenPath))
	}
	expiry := sent.Add(c.TTL)
	if !c.StaticTTL {
		if secs, ok := toFloat(lookup(doc, c.ExpiresInPath)); ok && secs > 0 {
			expiry = sent.Add(time.Duration(secs * float64(time.Second)))
		}
	}
	return &credentials.Tokens{AccessToken: secret.Secret(tok), Expiry: expiry}, nil
}

// NewTokenEndpoint returns an authorizer that sends tokens from a custom
// endpoint, cached in env.Store.
func NewTokenEndpoint(c TokenEndpointConfig, env Env) (*TokenAuthorizer, error) {
	g, err := c.Grant(env.client())
	if err != nil {
		return nil, err
	}
	if env.Now != nil {
		g.(*tokenEndpointGrant).now = env.Now
	}
	header, format, err := headerOptions(tokenEndpointScheme, c.Header, c.Format)
	if err != nil {
		return nil, err
	}
	fit := func(_ context.Context, rec *storage.Record, exists bool) (bool, error) {
		if !exists {
			rec.Scheme, rec.TokenURL, rec.ClientID = tokenEndpointScheme, c.URL, c.Username
			return true, nil
		}
		if rec.Scheme != tokenEndpointScheme || rec.TokenURL != c.URL || rec.ClientID != c.Username {
			return false, fmt.Errorf("%w: the stored scheme, url or username differs from this configuration's", ErrProfileInUse)
		}
		return false, nil
	}
	return newTokenAuthorizer(env, tokenOptions{scheme: tokenEndpointScheme, grant: g, header: header, format: format,
		password: c.Username != "", ensure: fit, secrets: map[string][]secret.Secret{"password": {c.Password, basicCredentials(c.Username, c.Password)}},
		// The retry wait is this scheme's retry policy: the protocol's own
		// retries would only be answered from the wait.
		configure: func(cfg *credentials.Config) { cfg.MaxRetries = -1 }})
}
