package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/httpauth"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
)

func init() { Register(sl1Scheme, NewSL1) }

const sl1Scheme = "sl1"

// sl1Fields are the fields of an SL1 "Low-code tools: rest" credential.
// A credential is taken as it stands: every one of them may be present,
// whatever its authType, and any other field is an error (a misspelt
// field must not silently change nothing).
var sl1Fields = map[string]bool{
	"authType": true, "url": true, "authEndpoint": true, "authHeader": true, "tokenKey": true, "tokenFormat": true,
	"username": true, "password": true, "proxy": true, "proxyHost": true, "proxyPort": true, "proxyUser": true,
	"proxyPasswd": true, "httpHeader1": true, "httpHeader2": true, "httpHeaders": true, "sslverifypeer": true,
	"ca_path": true, "timeToNextRequest": true, "opts": true, "debug": true, "tokenAuthRefresh": true,
	"tokenRefreshTTL": true, "tokenExpiresInSelector": true, "oauth2ClientId": true, "oauth2ClientSecret": true,
	"oauth2TokenURL": true, "oauth2TokenLabel": true, "oauth2TokenFormat": true, "oauth2TokenKey": true,
	"oauth2Type": true, "oauth2AuthType": true, "oauth2ClientCredentialsScope": true,
	"oauth2ResourceOwnerUsername": true, "oauth2ResourceOwnerPassword": true, "oauth2ResourceOwnerScope": true,
	"oauth2ResourceOwnerAdditionalParams": true, "prefix": true, "suffix": true, "apikey": true, "authOverride": true,
}

// NewSL1FromJSON returns the authorizer an SL1 credential's fields, as a
// JSON object, describe. See NewSL1.
func NewSL1FromJSON(credential []byte, env Env) (httpauth.Authorizer, error) {
	var p Params
	if err := json.Unmarshal(credential, &p); err != nil {
		return nil, &OptionError{Scheme: sl1Scheme, Option: "credential", Reason: "want a JSON object"}
	}
	return NewSL1(p, env)
}

// NewSL1 is the "sl1" scheme: an SL1 credential's fields (authType,
// oauth2ClientId, tokenKey ...), with SL1's names and defaults, mapped
// onto this package's schemes. authOverride names a registered scheme,
// which gets the same fields. Proxy and TLS fields (proxy, proxyHost,
// proxyPort, proxyUser, proxyPasswd, sslverifypeer, ca_path) configure the
// client for token requests unless env.HTTPClient is set; SL1Client
// returns a client with them for the API requests too. The opts and debug
// fields are accepted and have no effect.
func NewSL1(p Params, env Env) (httpauth.Authorizer, error) {
	c := sl1Credential(p)
	for _, k := range sortedKeys(p) {
		if !sl1Fields[k] {
			return nil, c.err(k, "not a field of an SL1 credential")
		}
	}
	// The proxy password rides in a Proxy-Authorization header.
	newSecrets(env.Masker, sl1Scheme).set("proxy_password", c.secret("proxyPasswd"))
	if env.HTTPClient == nil {
		tr, err := c.transport()
		if err != nil {
			return nil, err
		}
		if tr != nil {
			env.HTTPClient = &http.Client{Transport: tr, Timeout: 30 * time.Second}
		}
	}
	headers, err := c.headers()
	if err != nil {
		return nil, err
	}
	authType, _ := c.str("authType", "AuthNone")
	if override, _ := c.str("authOverride", ""); override != "" {
		a, err := New(override, p, env)
		if err != nil {
			return nil, err
		}
		return withHeaders(a, headers), nil
	}
	var a httpauth.Authorizer
	switch authType {
	case "AuthNone":
		a = None{}
	case "AuthBasic":
		user, _ := c.str("username", "")
		a, err = NewBasic(BasicConfig{Username: user, Password: c.secret("password")}, env)
	case "AuthApiKey":
		a, err = c.apiKey(env)
	case "AuthToken":
		a, err = c.token(env)
	case "AuthOAuth2":
		a, err = c.oauth2(env)
	default:
		return nil, c.err("authType", "want AuthNone, AuthBasic, AuthToken, AuthApiKey or AuthOAuth2, or set authOverride")
	}
	if err != nil {
		return nil, err
	}
	return withHeaders(a, headers), nil
}

// SL1Client returns an HTTP client for the API an SL1 credential is for:
// its proxy and TLS settings, and every request authorized by a. Close a
// (when it is an io.Closer) when done.
func SL1Client(p Params, env Env) (*http.Client, httpauth.Authorizer, error) {
	tr, err := sl1Credential(p).transport()
	if err != nil {
		return nil, nil, err
	}
	if tr == nil {
		tr = http.DefaultTransport.(*http.Transport).Clone()
	}
	if env.HTTPClient == nil {
		env.HTTPClient = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	}
	a, err := NewSL1(p, env)
	if err != nil {
		return nil, nil, err
	}
	return &http.Client{Transport: &httpauth.Transport{Authorizer: a, Base: tr}}, a, nil
}

type sl1Credential Params

func (c sl1Credential) err(field, reason string) error {
	return &OptionError{Scheme: sl1Scheme, Option: field, Reason: reason}
}

// str reads a text field; SL1 credentials carry numbers as text and
// text as numbers, so both are taken. Empty means the default.
func (c sl1Credential) str(name, def string) (string, error) {
	switch v := c[name].(type) {
	case nil:
		return def, nil
	case string:
		if v == "" {
			return def, nil
		}
		return v, nil
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), nil
	case json.Number:
		return v.String(), nil
	}
	return "", c.err(name, "want a string")
}

func (c sl1Credential) secret(name string) secret.Secret {
	s, _ := c.str(name, "")
	return secret.Secret(s)
}

func (c sl1Credential) boolean(name string, def bool) (bool, error) {
	switch v := c[name].(type) {
	case nil:
		return def, nil
	case bool:
		return v, nil
	case float64:
		return v != 0, nil
	case string:
		if v == "" {
			return def, nil
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, c.err(name, "want true or false")
		}
		return b, nil
	}
	return false, c.err(name, "want true or false")
}

// seconds reads a number of seconds.
func (c sl1Credential) seconds(name string, def time.Duration) (time.Duration, error) {
	if s, ok := c[name].(string); c[name] == nil || ok && s == "" {
		return def, nil
	}
	f, ok := toFloat(c[name])
	if !ok || f < 0 || f > 1e9 {
		return 0, c.err(name, "want a number of seconds")
	}
	return time.Duration(f * float64(time.Second)), nil
}

// headers are httpHeader1, httpHeader2 ("Name:Value") and httpHeaders (a
// JSON object), sent with every request.
func (c sl1Credential) headers() (http.Header, error) {
	h := http.Header{}
	for _, name := range []string{"httpHeader1", "httpHeader2"} {
		line, err := c.str(name, "")
		if err != nil || line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if k = strings.TrimSpace(k); !ok || !validHeaderName(k) {
			return nil, c.err(name, `want "Name:Value"`)
		}
		h.Set(k, strings.TrimSpace(v))
	}
	if x := c["httpHeaders"]; x != nil && x != "" {
		m, ok := toStringMap(x)
		if !ok {
			return nil, c.err("httpHeaders", "want a JSON object of strings")
		}
		for _, k := range sortedKeys(m) {
			if !validHeaderName(k) {
				return nil, c.err("httpHeaders", "not a valid header name")
			}
			h.Set(k, m[k])
		}
	}
	return h, nil
}

// transport is the proxy and TLS configuration; nil when the credential
// sets none.
func (c sl1Credential) transport() (*http.Transport, error) {
	useProxy, err := c.boolean("proxy", false)
	if err != nil {
		return nil, err
	}
	verify, err := c.boolean("sslverifypeer", true)
	if err != nil {
		return nil, err
	}
	caPath, _ := c.str("ca_path", "")
	if !useProxy && verify && caPath == "" {
		return nil, nil
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if useProxy {
		host, _ := c.str("proxyHost", "")
		port, _ := c.str("proxyPort", "")
		if host == "" {
			return nil, c.err("proxyHost", "required when proxy is true")
		}
		u := &url.URL{Scheme: "http", Host: host}
		if port != "" {
			u.Host = net.JoinHostPort(host, port)
		}
		if user, _ := c.str("proxyUser", ""); user != "" {
			u.User = url.UserPassword(user, c.secret("proxyPasswd").Reveal())
		}
		tr.Proxy = http.ProxyURL(u)
	}
	tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: !verify} //nolint:gosec // sslverifypeer false asks for it
	if caPath != "" {
		pool, err := loadCAs(caPath)
		if err != nil {
			return nil, c.err("ca_path", err.Error())
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	return tr, nil
}

// loadCAs reads PEM certificates from a file, or every file of a
// directory (as curl's CApath).
func loadCAs(path string) (*x509.CertPool, error) {
	files := []string{path}
	if st, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("cannot read it")
	} else if st.IsDir() {
		entries, _ := os.ReadDir(path)
		files = files[:0]
		for _, e := range entries {
			if !e.IsDir() {
				files = append(files, filepath.Join(path, e.Name()))
			}
		}
	}
	pool := x509.NewCertPool()
	found := false
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil && pool.AppendCertsFromPEM(b) {
			found = true
		}
	}
	if !found {
		return nil, fmt.Errorf("no PEM certificate there")
	}
	return pool, nil
}

// apiKey: SL1's AuthApiKey sends the key in authHeader, which defaults to
// Authorization (not X-Api-Key, en_auth's default).
func (c sl1Credential) apiKey(env Env) (httpauth.Authorizer, error) {
	header, _ := c.str("authHeader", "Authorization")
	prefix, _ := c.str("prefix", "")
	suffix, _ := c.str("suffix", "")
	return NewAPIKey(APIKeyConfig{Key: c.secret("apikey"), Header: header, Prefix: prefix, Suffix: suffix}, env)
}

// refresh reads tokenAuthRefresh and tokenRefreshTTL: with
// tokenAuthRefreshStatic the token lives tokenRefreshTTL whatever the
// server says.
func (c sl1Credential) refresh() (static bool, ttl time.Duration, err error) {
	mode, _ := c.str("tokenAuthRefresh", "tokenAuthRefreshDynamic")
	switch mode {
	case "tokenAuthRefreshDynamic":
	case "tokenAuthRefreshStatic":
		static = true
	default:
		return false, 0, c.err("tokenAuthRefresh", "want tokenAuthRefreshStatic or tokenAuthRefreshDynamic")
	}
	ttl, err = c.seconds("tokenRefreshTTL", time.Hour)
	if err == nil && ttl < time.Second {
		err = c.err("tokenRefreshTTL", "must be at least 1 second")
	}
	return static, ttl, err
}

func (c sl1Credential) token(env Env) (httpauth.Authorizer, error) {
	endpoint, _ := c.str("authEndpoint", "")
	if endpoint == "" {
		endpoint, _ = c.str("url", "")
	}
	static, ttl, err := c.refresh()
	if err != nil {
		return nil, err
	}
	wait, err := c.seconds("timeToNextRequest", time.Minute)
	if err != nil {
		return nil, err
	}
	user, _ := c.str("username", "")
	header, _ := c.str("authHeader", "Authorization")
	key, _ := c.str("tokenKey", "access_token")
	format, _ := c.str("tokenFormat", "Bearer {}")
	expires, _ := c.str("tokenExpiresInSelector", "expires_in")
	return NewTokenEndpoint(TokenEndpointConfig{URL: endpoint, Username: user, Password: c.secret("password"),
		TokenPath: key, Header: header, Format: format, ExpiresInPath: expires, TTL: ttl, StaticTTL: static,
		RetryWait: max(wait, time.Nanosecond)}, env)
}

// oauth2 maps AuthOAuth2 onto a grant that reads the token and its
// lifetime where oauth2TokenKey and tokenExpiresInSelector say, and waits
// timeToNextRequest after a failed request before the next.
func (c sl1Credential) oauth2(env Env) (httpauth.Authorizer, error) {
	g := &sl1OAuthGrant{clientSecret: c.secret("oauth2ClientSecret")}
	var err error
	g.tokenURL, _ = c.str("oauth2TokenURL", "")
	if u, perr := url.Parse(g.tokenURL); g.tokenURL == "" || perr != nil || !u.IsAbs() {
		return nil, c.err("oauth2TokenURL", "want an absolute URL")
	}
	g.clientID, _ = c.str("oauth2ClientId", "")
	authType, _ := c.str("oauth2AuthType", "basic_auth")
	if g.style, err = credentials.ParseAuthStyle(authType); err != nil {
		return nil, c.err("oauth2AuthType", "want basic_auth or post_body")
	}
	if x := c["oauth2ResourceOwnerAdditionalParams"]; x != nil && x != "" {
		if g.params, _ = toStringMap(x); g.params == nil {
			return nil, c.err("oauth2ResourceOwnerAdditionalParams", "want a JSON object of strings")
		}
	}
	typ, _ := c.str("oauth2Type", "None")
	switch typ {
	case "ClientCredentials":
		g.grantType = "client_credentials"
		g.scope, _ = c.str("oauth2ClientCredentialsScope", "")
	case "ResourceOwner":
		g.grantType = "password"
		g.username, _ = c.str("oauth2ResourceOwnerUsername", "")
		g.password = c.secret("oauth2ResourceOwnerPassword")
		g.scope, _ = c.str("oauth2ResourceOwnerScope", "")
		if g.username == "" {
			return nil, c.err("oauth2ResourceOwnerUsername", "required for ResourceOwner")
		}
	default:
		return nil, c.err("oauth2Type", "want ResourceOwner or ClientCredentials: "+strconv.Quote(typ)+" obtains no token")
	}
	if g.tokenKey, err = c.str("oauth2TokenKey", "access_token"); err != nil {
		return nil, err
	}
	if g.expiresKey, err = c.str("tokenExpiresInSelector", "expires_in"); err != nil {
		return nil, err
	}
	if g.static, g.ttl, err = c.refresh(); err != nil {
		return nil, err
	}
	if g.pace.wait, err = c.seconds("timeToNextRequest", time.Minute); err != nil {
		return nil, err
	}
	header, _ := c.str("oauth2TokenLabel", "Authorization")
	format, _ := c.str("oauth2TokenFormat", "Bearer {}")
	if header, format, err = headerOptions(sl1Scheme, header, format); err != nil {
		return nil, err
	}
	g.client = env.client()
	g.pace.now = time.Now
	if env.Now != nil {
		g.pace.now = env.Now
	}
	oc := &oauthClient{clientID: g.clientID, tokenURL: g.tokenURL, scopes: strings.Fields(g.scope)}
	a, err := newTokenAuthorizer(env, tokenOptions{scheme: sl1OAuthScheme, grant: g, authStyle: g.style, header: header, format: format,
		password: g.grantType == "password", ensure: oc.fits(sl1OAuthScheme, g.username),
		clientID: g.clientID, username: g.username,
		secrets: map[string][]secret.Secret{"client_secret": clientSecrets(g.clientID, g.clientSecret), "password": {g.password}},
		// timeToNextRequest is the retry policy: the protocol's own
		// retries would only be answered from the wait.
		configure: func(cfg *credentials.Config) { cfg.MaxRetries = -1 }})
	if err == nil {
		g.secrets = a.secrets
	}
	return a, err
}

const sl1OAuthScheme = "sl1_oauth2"

// sl1OAuthGrant is SL1's AuthOAuth2: an RFC 6749 token request whose
// answer may keep the token and its lifetime under other names.
type sl1OAuthGrant struct {
	client               *http.Client
	style                credentials.AuthStyle
	tokenURL, clientID   string
	clientSecret         secret.Secret
	grantType, scope     string
	username             string
	password             secret.Secret
	params               map[string]string
	tokenKey, expiresKey string
	static               bool
	ttl                  time.Duration
	pace                 retryPace
	secrets              secrets
}

// Obtain implements credentials.Grant. A password grant spends a stored
// refresh token first, and logs in again when it is refused.
func (g *sl1OAuthGrant) Obtain(ctx context.Context, rec *storage.Record) (*credentials.Tokens, error) {
	return g.pace.do(ctx, func() (*credentials.Tokens, error) {
		if g.grantType == "password" && rec.RefreshToken != "" {
			g.secrets.set("refresh_token", rec.RefreshToken)
			t, err := g.request(ctx, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rec.RefreshToken.Reveal()}})
			if !errors.Is(err, credentials.ErrInvalidGrant) {
				return t, err
			}
		}
		form := url.Values{"grant_type": {g.grantType}}
		if g.grantType == "password" {
			form.Set("username", g.username)
			form.Set("password", g.password.Reveal())
		}
		if g.scope != "" {
			form.Set("scope", g.scope)
		}
		// SL1's own example of additional parameters sets scope:
		// they are the last word.
		for k, v := range g.params {
			form.Set(k, v)
		}
		return g.request(ctx, form)
	})
}

func (g *sl1OAuthGrant) request(ctx context.Context, form url.Values) (*credentials.Tokens, error) {
	if g.style == credentials.AuthInBody || g.clientSecret == "" {
		form.Set("client_id", g.clientID)
		if g.clientSecret != "" {
			form.Set("client_secret", g.clientSecret.Reveal())
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if g.style != credentials.AuthInBody && g.clientSecret != "" {
		req.SetBasicAuth(url.QueryEscape(g.clientID), url.QueryEscape(g.clientSecret.Reveal()))
	}
	sent := g.pace.now()
	doc, err := getJSON(g.client, req)
	if err != nil {
		return nil, err
	}
	tok, ok := lookup(doc, g.tokenKey).(string)
	if !ok || tok == "" {
		return nil, malformed(req, fmt.Sprintf("no string at %q in the response", g.tokenKey))
	}
	t := &credentials.Tokens{AccessToken: secret.Secret(tok), Expiry: sent.Add(g.ttl)}
	if !g.static {
		if secs, ok := toFloat(lookup(doc, g.expiresKey)); ok && secs > 0 {
			t.Expiry = sent.Add(time.Duration(secs * float64(time.Second)))
		}
	}
	if rt, _ := lookup(doc, "refresh_token").(string); rt != "" && g.grantType == "password" {
		t.RefreshToken = secret.Secret(rt)
		g.secrets.set("refresh_token", t.RefreshToken)
	}
	return t, nil
}

// retryPace is SL1's timeToNextRequest: after a failed request, no new
// one for wait; callers get the failure meanwhile.
type retryPace struct {
	wait time.Duration
	now  func() time.Time

	mu     sync.Mutex
	failed error
	until  time.Time
}

func (p *retryPace) do(ctx context.Context, f func() (*credentials.Tokens, error)) (*credentials.Tokens, error) {
	p.mu.Lock()
	if err := p.failed; err != nil && p.now().Before(p.until) {
		p.mu.Unlock()
		return nil, err
	}
	p.mu.Unlock()
	t, err := f()
	if err != nil && ctx.Err() == nil && p.wait > 0 {
		p.mu.Lock()
		p.failed, p.until = err, p.now().Add(p.wait)
		p.mu.Unlock()
	}
	return t, err
}

// withHeaders adds fixed headers to what a sends: set on a token
// authorizer, or around any other.
func withHeaders(a httpauth.Authorizer, h http.Header) httpauth.Authorizer {
	if len(h) == 0 {
		return a
	}
	if ta, ok := a.(*TokenAuthorizer); ok {
		if ta.extra == nil {
			ta.extra = http.Header{}
		}
		for k, v := range h {
			ta.extra[k] = v
		}
		return ta
	}
	return &headerAuthorizer{printable: printable{"headerAuthorizer"}, inner: a, h: h}
}

type headerAuthorizer struct {
	printable
	inner httpauth.Authorizer
	h     http.Header
}

// Authorize sets the fixed headers, then the scheme's own, which win.
func (a *headerAuthorizer) Authorize(ctx context.Context, req *http.Request) error {
	for k, v := range a.h {
		req.Header[k] = append([]string(nil), v...)
	}
	return a.inner.Authorize(ctx, req)
}
