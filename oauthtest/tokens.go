package oauthtest

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// A family is one grant: the chain of refresh tokens that rotation derives
// from one authorization, and the access tokens issued from them. Revoking
// it is one flag, which every token of the family checks.
type family struct {
	id                       string // for logs; not a credential
	clientID, subject, scope string
	current                  string // the refresh token that rotates next
	gens                     int    // refresh tokens the family has had
	revoked                  bool
	revokedAt                time.Time
}

// revokeLocked revokes the whole family at now.
func (f *family) revokeLocked(now time.Time) {
	if !f.revoked {
		f.revoked, f.revokedAt = true, now
	}
}

type refreshToken struct {
	fam       *family
	gen       int       // its place in the family's chain, from 0
	rotatedAt time.Time // zero while the token is its family's current one
}

type accessToken struct {
	clientID  string
	fam       *family // nil for grants without a refresh token
	value     string  // the token as issued, for ContainsToken
	iat, exp  time.Time
	revoked   bool
	revokedAt time.Time
}

type authCode struct {
	clientID, redirectURI, challenge, scope string
	exp                                     time.Time
	used                                    bool
	fam                                     *family // issued on redemption; revoked if the code is replayed
}

// codeTTL is how long an authorization code can be redeemed; RFC 6749
// §4.1.2 recommends at most ten minutes.
const codeTTL = time.Minute

type claims struct {
	Iss      string `json:"iss"`
	Sub      string `json:"sub"`
	ClientID string `json:"client_id"`
	Scope    string `json:"scope,omitempty"`
	Iat      int64  `json:"iat"`
	Exp      int64  `json:"exp"`
	Jti      string `json:"jti"`
}

var (
	b64 = base64.RawURLEncoding
	// The server issues one header only, so comparing it whole rules out
	// algorithm confusion without parsing it.
	jwtHeader = b64.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
)

func (s *Server) mac(msg string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// accessKey returns the key of an access token in s.access: the token itself
// when opaque, else the jti of a JWT whose signature checks.
func (s *Server) accessKey(tok string) (string, bool) {
	if s.opts.Opaque {
		return tok, true
	}
	i := strings.LastIndexByte(tok, '.')
	if i < 0 || !strings.HasPrefix(tok, jwtHeader+".") {
		return "", false
	}
	sig, err := b64.DecodeString(tok[i+1:])
	if err != nil || !hmac.Equal(sig, s.mac(tok[:i])) {
		return "", false
	}
	body, err := b64.DecodeString(tok[len(jwtHeader)+1 : i])
	var c claims
	if err != nil || json.Unmarshal(body, &c) != nil {
		return "", false
	}
	return c.Jti, true
}

// ttlSeconds is the access-token lifetime as the wire carries it.
func (s *Server) ttlSeconds() int64 {
	return int64((s.opts.AccessTTL + time.Second - 1) / time.Second)
}

func (s *Server) issueAccessLocked(clientID, subject, scope string, fam *family) string {
	now := s.opts.Now()
	// exp is rounded up to a whole second so that it never falls before the
	// expiry a client derives from expires_in on receipt.
	exp := now.Add(time.Duration(s.ttlSeconds())*time.Second + time.Second - 1).Unix()
	c := claims{Iss: s.URL, Sub: subject, ClientID: clientID, Scope: scope, Iat: now.Unix(), Exp: exp, Jti: rand.Text()}
	at := &accessToken{clientID: clientID, fam: fam, iat: now, exp: time.Unix(c.Exp, 0), value: c.Jti}
	s.access[c.Jti] = at
	s.stats.issued.Add(1)
	if s.opts.Opaque {
		return c.Jti
	}
	body, _ := json.Marshal(c) // cannot fail: strings and integers
	msg := jwtHeader + "." + b64.EncodeToString(body)
	at.value = msg + "." + b64.EncodeToString(s.mac(msg))
	return at.value
}

func (s *Server) newFamilyLocked(clientID, subject, scope string) *family {
	f := &family{id: rand.Text()[:8], clientID: clientID, subject: subject, scope: scope, current: rand.Text(), gens: 1}
	s.refresh[f.current] = &refreshToken{fam: f}
	return f
}

func (s *Server) response(access, refresh, scope string) *tokenResponse {
	r := &tokenResponse{AccessToken: access, TokenType: "Bearer", RefreshToken: refresh, Scope: scope}
	if !s.opts.OmitExpiresIn {
		r.ExpiresIn = s.ttlSeconds()
	}
	return r
}

// IssueRefreshToken starts a new grant for a registered client, as if a user
// had authorized it, and returns its refresh token. It panics if the client
// is unknown, like httptest does on misuse.
func (s *Server) IssueRefreshToken(clientID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.clients[clientID]; !ok {
		panic("oauthtest: IssueRefreshToken for an unregistered client")
	}
	return s.newFamilyLocked(clientID, "user", "").current
}

// IssueDeveloperToken returns a new developer token that DeveloperTokenURL
// redeems for access tokens.
func (s *Server) IssueDeveloperToken() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	dt := rand.Text()
	s.devTokens[dt] = true
	return dt
}

// Valid reports whether accessToken was issued by this server, is unexpired
// on the server's clock and was not revoked, alone or with its family.
func (s *Server) Valid(accessToken string) bool {
	key, ok := s.accessKey(accessToken)
	if !ok {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.access[key]
	return ok && !at.revoked && (at.fam == nil || !at.fam.revoked) && s.opts.Now().Before(at.exp)
}

// ValidRefresh reports whether the server would accept refreshToken now
// without a reuse detection: it is its family's current token, or was
// rotated within ReuseGrace, and the family is not revoked.
func (s *Server) ValidRefresh(refreshToken string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt, ok := s.refresh[refreshToken]
	return ok && !rt.fam.revoked && (rt.rotatedAt.IsZero() || s.inGrace(rt))
}

func (s *Server) inGrace(rt *refreshToken) bool {
	return s.opts.ReuseGrace > 0 && s.opts.Now().Sub(rt.rotatedAt) <= s.opts.ReuseGrace
}

// Revoke revokes a token on the server's side, as a user withdrawing consent
// would: a refresh token takes its whole family with it. It reports whether
// a live token was revoked.
func (s *Server) Revoke(token string) bool {
	revoked, _ := s.revoke(token, "")
	return revoked
}

// revoke revokes token if client (any client when empty) owns it; refused
// when another client does. Unknown tokens are neither.
func (s *Server) revoke(token, client string) (revoked, refused bool) {
	key, isAccess := s.accessKey(token)
	s.mu.Lock()
	defer s.mu.Unlock()
	var owner string
	var flag *bool
	var at *time.Time
	if rt, ok := s.refresh[token]; ok {
		owner, flag, at = rt.fam.clientID, &rt.fam.revoked, &rt.fam.revokedAt
	} else if a, ok := s.access[key]; isAccess && ok {
		owner, flag, at = a.clientID, &a.revoked, &a.revokedAt
	} else {
		return false, false
	}
	if client != "" && owner != client {
		return false, true
	}
	if *flag {
		return false, false
	}
	*flag, *at = true, s.opts.Now()
	s.stats.revocations.Add(1)
	return true, false
}

// refreshGrant is RFC 6749 §6 with rotation and RFC 9700 §4.14.2 reuse
// detection. The holds let a test stop the request on either side of the
// rotation.
func (s *Server) refreshGrant(r *http.Request, client string, p url.Values, ev *RefreshEvent) (*tokenResponse, *oauthError) {
	presented := p.Get("refresh_token")
	if presented == "" {
		return nil, invalidRequest("missing refresh_token")
	}
	s.hold(r, BeforeRotate)
	s.mu.Lock()
	fam, e := s.rotateLocked(presented, client, ev)
	var access, next string
	if e == nil {
		access, next = s.issueAccessLocked(client, fam.subject, fam.scope, fam), fam.current
	}
	s.mu.Unlock()
	if e != nil {
		return nil, e
	}
	s.hold(r, AfterRotate)
	if !s.opts.Rotate {
		next = ""
	}
	return s.response(access, next, fam.scope), nil
}

// rotateLocked checks the presented refresh token and, when rotating, makes
// a successor the family's current token.
func (s *Server) rotateLocked(presented, client string, ev *RefreshEvent) (*family, *oauthError) {
	rt, ok := s.refresh[presented]
	ev.Result = ResultInvalid
	switch {
	case !ok || rt.fam.revoked:
		return nil, invalidGrant("refresh token is invalid or revoked")
	case rt.fam.clientID != client:
		return nil, invalidGrant("refresh token was issued to another client")
	case rt.rotatedAt.IsZero():
		ev.Result = ResultRefreshed
		if s.opts.Rotate {
			ev.Result = ResultRotated
			rt.rotatedAt = s.opts.Now()
			rt.fam.current = rand.Text()
			s.refresh[rt.fam.current] = &refreshToken{fam: rt.fam, gen: rt.fam.gens}
			rt.fam.gens++
		}
		return rt.fam, nil
	case s.inGrace(rt):
		// Hand out the current successor rather than rotating again, so
		// that a retry does not fork the family or strand the successor
		// another process may already have stored.
		ev.Result = ResultGrace
		return rt.fam, nil
	}
	ev.Result = ResultReuse
	rt.fam.revokeLocked(s.opts.Now())
	s.stats.reuse.Add(1)
	s.reuses = append(s.reuses, Reuse{At: s.opts.Now(), Family: rt.fam.id, Generation: rt.gen, Current: rt.fam.gens - 1})
	if s.opts.Logger != nil {
		s.opts.Logger.LogAttrs(context.Background(), slog.LevelWarn, "oauthtest: refresh token reuse detected, family revoked",
			slog.String("client_id", client), slog.String("family", rt.fam.id))
	}
	return nil, invalidGrant("refresh token reuse detected; the grant is revoked")
}

func (s *Server) newCode(q url.Values) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	code := rand.Text()
	s.codes[code] = &authCode{
		clientID: q.Get("client_id"), redirectURI: q.Get("redirect_uri"),
		challenge: q.Get("code_challenge"), scope: q.Get("scope"),
		exp: s.opts.Now().Add(codeTTL),
	}
	return code
}

// codeGrant is RFC 6749 §4.1.3 with RFC 7636 PKCE (S256 only).
func (s *Server) codeGrant(client string, p url.Values) (*tokenResponse, *oauthError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.codes[p.Get("code")]
	switch {
	case !ok || c.clientID != client:
		return nil, invalidGrant("unknown authorization code")
	case c.used:
		// RFC 6749 §4.1.2: a replayed code may be stolen; revoke what it gave.
		c.fam.revokeLocked(s.opts.Now())
		return nil, invalidGrant("authorization code already used")
	case !s.opts.Now().Before(c.exp):
		return nil, invalidGrant("authorization code expired")
	case p.Get("redirect_uri") != c.redirectURI:
		return nil, invalidGrant("redirect_uri does not match the authorization request")
	case !pkceOK(p.Get("code_verifier"), c.challenge):
		return nil, invalidGrant("PKCE verification failed")
	}
	c.used = true
	c.fam = s.newFamilyLocked(client, "user", c.scope)
	return s.response(s.issueAccessLocked(client, "user", c.scope, c.fam), c.fam.current, c.scope), nil
}

func pkceOK(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	sum := sha256.Sum256([]byte(verifier))
	return subtle.ConstantTimeCompare([]byte(b64.EncodeToString(sum[:])), []byte(challenge)) == 1
}

// clientGrant is RFC 6749 §4.4: the client acts for itself, so there is no
// refresh token.
func (s *Server) clientGrant(client string, p url.Values) (*tokenResponse, *oauthError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clients[client] == "" {
		return nil, errorf(http.StatusBadRequest, "unauthorized_client", "public clients cannot use client_credentials")
	}
	scope := p.Get("scope")
	return s.response(s.issueAccessLocked(client, client, scope, nil), "", scope), nil
}

// passwordGrant is RFC 6749 §4.3, the resource-owner password grant.
func (s *Server) passwordGrant(client string, p url.Values) (*tokenResponse, *oauthError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	user, scope := p.Get("username"), p.Get("scope")
	want, ok := s.users[user]
	if !ok || subtle.ConstantTimeCompare([]byte(want), []byte(p.Get("password"))) != 1 {
		return nil, invalidGrant("invalid resource owner credentials")
	}
	fam := s.newFamilyLocked(client, user, scope)
	return s.response(s.issueAccessLocked(client, user, scope, fam), fam.current, scope), nil
}
