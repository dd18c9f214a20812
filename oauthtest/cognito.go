package oauthtest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// CognitoServer is a test stand-in for an Amazon Cognito user pool: the
// part of its API that logs users in with SRP (InitiateAuth with
// USER_SRP_AUTH, then RespondToAuthChallenge with PASSWORD_VERIFIER) and
// renews their tokens (InitiateAuth with REFRESH_TOKEN_AUTH), in the AWS
// JSON 1.1 protocol at one URL, as cognito-idp.<region>.amazonaws.com
// speaks it. Amazon's own JavaScript client (amazon-cognito-identity-js)
// logs in against it when given its URL as the pool's endpoint.
//
// It keeps only SRP verifiers and salts, as Cognito does, not passwords.
// Access, id and refresh tokens are HS256 JWTs with Cognito's claims; the
// refresh token does not rotate. Refusals are Cognito's: a wrong password
// is NotAuthorizedException, an unknown user UserNotFoundException, a
// wrong SECRET_HASH NotAuthorizedException naming the secret hash, all
// with status 400.
type CognitoServer struct {
	// URL is the endpoint, http://127.0.0.1:port/, with the trailing slash.
	URL string
	// PoolID is the user pool's id, "<region>_<name>".
	PoolID string

	opts     CognitoOptions
	poolName string
	key      []byte
	ts       *httptest.Server

	mu       sync.Mutex
	clients  map[string]string // id -> secret ("" for none)
	users    map[string]*cognitoUser
	sessions map[string]*srpSession
	refresh  map[string]string // refresh token -> user

	logins, refreshes, failures atomic.Int64
	starts, shortU, shortS      atomic.Int64
}

// CognitoOptions configure a CognitoServer.
type CognitoOptions struct {
	// PoolID is the user pool id; default "us-east-1_TestPool1".
	PoolID string
	// AccessTTL is the lifetime of access and id tokens (default 1h),
	// rounded up to a whole second.
	AccessTTL time.Duration
	// Latency delays every answer, so that concurrent clients overlap.
	Latency time.Duration
	// Now is the server's clock (default time.Now). TIMESTAMP answers
	// more than 5 minutes from it are refused.
	Now func() time.Time
	// ShortEvery makes every n-th login choose its b (a search of some
	// hundred tries) so that u = H(A|B), or in turn the shared secret S,
	// begins with a zero byte. Cognito hashes both without that byte, so
	// a client that encodes them wrongly fails these logins, which happen
	// by chance once in 256. Zero: b is drawn once, as Cognito does.
	ShortEvery int
}

type cognitoUser struct {
	name     string
	salt     *big.Int
	verifier *big.Int // g^x mod N
}

type srpSession struct {
	user        *cognitoUser
	clientID    string
	A, b, B     *big.Int
	secretBlock []byte
	expires     time.Time
}

// CognitoStats counts what a CognitoServer did.
type CognitoStats struct {
	Logins    int64 // completed SRP logins
	Refreshes int64 // REFRESH_TOKEN_AUTH calls answered with tokens
	Failures  int64 // refused calls
	// ShortU and ShortS count the logins whose u, or S, began with a zero
	// byte (see CognitoOptions.ShortEvery).
	ShortU, ShortS int64
}

// The group Cognito uses: RFC 5054's 3072-bit prime with generator 2.
var (
	cogN, _ = new(big.Int).SetString("FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E208E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF", 16)
	cogG    = big.NewInt(2)
	cogK    = new(big.Int).SetBytes(cogHash(cogSigned(cogN), cogSigned(cogG)))
)

// cogSigned is Java's BigInteger.toByteArray for a non-negative number, the
// encoding Cognito hashes: minimal big-endian bytes, with a zero byte in
// front when the top bit would read as a sign.
func cogSigned(x *big.Int) []byte {
	b := x.Bytes()
	if len(b) == 0 || b[0] >= 0x80 {
		b = append([]byte{0}, b...)
	}
	return b
}

func cogHash(parts ...[]byte) []byte {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}

func cogHMAC(key []byte, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// NewCognitoServer starts a user pool on a random port of 127.0.0.1. Call
// Close when done.
func NewCognitoServer(opts CognitoOptions) *CognitoServer {
	if opts.PoolID == "" {
		opts.PoolID = "us-east-1_TestPool1"
	}
	if opts.AccessTTL <= 0 {
		opts.AccessTTL = time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	_, name, _ := strings.Cut(opts.PoolID, "_")
	s := &CognitoServer{PoolID: opts.PoolID, opts: opts, poolName: name, key: cogRandom(32),
		clients: map[string]string{}, users: map[string]*cognitoUser{},
		sessions: map[string]*srpSession{}, refresh: map[string]string{}}
	s.ts = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.ts.URL + "/"
	return s
}

// Close shuts the server down.
func (s *CognitoServer) Close() { s.ts.Close() }

// AddClient registers an app client; secret "" makes a public client,
// which sends no SECRET_HASH.
func (s *CognitoServer) AddClient(id, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients[id] = secret
}

// AddUser registers a user with a random salt of 16 bytes, keeping only
// the verifier of the password, as Cognito does.
func (s *CognitoServer) AddUser(username, password string) {
	s.AddUserSalt(username, password, cogRandom(16))
}

// AddUserSalt is AddUser with a given salt, so that a test can choose
// salts whose encoding is tricky (a leading zero byte, the top bit set).
func (s *CognitoServer) AddUserSalt(username, password string, salt []byte) {
	saltInt := new(big.Int).SetBytes(salt)
	x := new(big.Int).SetBytes(cogHash(cogSigned(saltInt), cogHash([]byte(s.poolName+username+":"+password))))
	u := &cognitoUser{name: username, salt: saltInt, verifier: new(big.Int).Exp(cogG, x, cogN)}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[username] = u
}

// Stats returns the counters.
func (s *CognitoServer) Stats() CognitoStats {
	return CognitoStats{Logins: s.logins.Load(), Refreshes: s.refreshes.Load(), Failures: s.failures.Load(),
		ShortU: s.shortU.Load(), ShortS: s.shortS.Load()}
}

// Valid reports whether token is an access or id token this server issued
// that has not expired.
func (s *CognitoServer) Valid(token string) bool {
	claims, ok := s.verify(token)
	if !ok || (claims.TokenUse != "access" && claims.TokenUse != "id") {
		return false
	}
	return s.opts.Now().Unix() < claims.Exp
}

// RevokeRefresh makes a refresh token unusable, as a global sign-out does.
func (s *CognitoServer) RevokeRefresh(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.refresh, token)
}

type cognitoFault struct {
	name, message string
}

func (s *CognitoServer) serve(w http.ResponseWriter, r *http.Request) {
	if s.opts.Latency > 0 {
		select {
		case <-time.After(s.opts.Latency):
		case <-r.Context().Done():
			return
		}
	}
	// Browsers' preflight, for clients that run in one.
	if r.Method == http.MethodOptions {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Allow-Headers", "*")
		return
	}
	action, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), "AWSCognitoIdentityProviderService.")
	if r.Method != http.MethodPost || !ok {
		s.fail(w, &cognitoFault{"UnknownOperationException", ""})
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-amz-json-1.1") {
		s.fail(w, &cognitoFault{"SerializationException", "Content-Type must be application/x-amz-json-1.1"})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		s.fail(w, &cognitoFault{"SerializationException", "unreadable body"})
		return
	}
	var out any
	var fault *cognitoFault
	switch action {
	case "InitiateAuth":
		out, fault = s.initiateAuth(body)
	case "RespondToAuthChallenge":
		out, fault = s.respondToAuthChallenge(body)
	default:
		fault = &cognitoFault{"UnknownOperationException", ""}
	}
	if fault != nil {
		s.fail(w, fault)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	json.NewEncoder(w).Encode(out)
}

func (s *CognitoServer) fail(w http.ResponseWriter, f *cognitoFault) {
	s.failures.Add(1)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", f.name+":")
	w.WriteHeader(http.StatusBadRequest)
	json.NewEncoder(w).Encode(map[string]string{"__type": f.name, "message": f.message})
}

var (
	cogBadCredentials = &cognitoFault{"NotAuthorizedException", "Incorrect username or password."}
	cogBadRefresh     = &cognitoFault{"NotAuthorizedException", "Invalid Refresh Token"}
)

func cogInvalidParam(msg string) *cognitoFault {
	return &cognitoFault{"InvalidParameterException", msg}
}

// checkClient checks the client id and, for a client with a secret, the
// SECRET_HASH computed for username.
func (s *CognitoServer) checkClient(clientID, username, secretHash string) *cognitoFault {
	s.mu.Lock()
	sec, ok := s.clients[clientID]
	s.mu.Unlock()
	switch {
	case !ok:
		return &cognitoFault{"ResourceNotFoundException", "User pool client " + clientID + " does not exist."}
	case sec == "":
		return nil
	case secretHash == "":
		return &cognitoFault{"NotAuthorizedException", "Client " + clientID + " is configured with secret but SECRET_HASH was not received"}
	}
	want := base64.StdEncoding.EncodeToString(cogHMAC([]byte(sec), []byte(username+clientID)))
	if subtle.ConstantTimeCompare([]byte(want), []byte(secretHash)) != 1 {
		return &cognitoFault{"NotAuthorizedException", "Unable to verify secret hash for client " + clientID}
	}
	return nil
}

func (s *CognitoServer) initiateAuth(body []byte) (any, *cognitoFault) {
	var in struct {
		AuthFlow       string
		ClientID       string `json:"ClientId"`
		AuthParameters map[string]string
	}
	if json.Unmarshal(body, &in) != nil {
		return nil, &cognitoFault{"SerializationException", "malformed JSON"}
	}
	p := in.AuthParameters
	switch in.AuthFlow {
	case "USER_SRP_AUTH":
		return s.startSRP(in.ClientID, p)
	case "REFRESH_TOKEN_AUTH", "REFRESH_TOKEN":
		s.mu.Lock()
		user, ok := s.refresh[p["REFRESH_TOKEN"]]
		s.mu.Unlock()
		if !ok {
			return nil, cogBadRefresh
		}
		if f := s.checkClient(in.ClientID, user, p["SECRET_HASH"]); f != nil {
			return nil, f
		}
		s.refreshes.Add(1)
		return map[string]any{"ChallengeParameters": map[string]string{},
			"AuthenticationResult": s.issue(in.ClientID, user, false)}, nil
	default:
		return nil, cogInvalidParam("unsupported AuthFlow " + in.AuthFlow)
	}
}

func (s *CognitoServer) startSRP(clientID string, p map[string]string) (any, *cognitoFault) {
	username := p["USERNAME"]
	if f := s.checkClient(clientID, username, p["SECRET_HASH"]); f != nil {
		return nil, f
	}
	A, ok := new(big.Int).SetString(p["SRP_A"], 16)
	if !ok || A.Sign() <= 0 || new(big.Int).Mod(A, cogN).Sign() == 0 {
		return nil, cogInvalidParam("SRP_A is not a valid SRP value")
	}
	s.mu.Lock()
	user, ok := s.users[username]
	s.mu.Unlock()
	if !ok {
		return nil, &cognitoFault{"UserNotFoundException", "User does not exist."}
	}
	// B = k*v + g^b mod N, drawn again in the (negligible) case it is 0,
	// or until u or S begins with a zero byte when the test asks for it.
	short := 0 // 1: u, 2: S
	if n := s.starts.Add(1); s.opts.ShortEvery > 0 && n%int64(s.opts.ShortEvery) == 0 {
		short = 1 + int(n/int64(s.opts.ShortEvery))%2
	}
	// A search draws short b: a client cannot tell, and each try then
	// costs exponentiations with 128-bit exponents, not 1024-bit ones.
	size := 128
	if short != 0 {
		size = 16
	}
	var b, B *big.Int
	for tries := 0; ; tries++ {
		b = new(big.Int).SetBytes(cogRandom(size))
		B = new(big.Int).Mul(cogK, user.verifier)
		B.Add(B, new(big.Int).Exp(cogG, b, cogN)).Mod(B, cogN)
		if B.Sign() == 0 {
			continue
		}
		if short == 0 || tries > 4096 {
			break
		}
		u := cogHash(cogSigned(A), cogSigned(B))
		if short == 1 && u[0] == 0 || short == 2 && len(cogSecret(A, B, b, user.verifier).Bytes()) < 384 {
			break
		}
	}
	sess := &srpSession{user: user, clientID: clientID, A: A, b: b, B: B,
		secretBlock: cogRandom(64), expires: s.opts.Now().Add(3 * time.Minute)}
	id := base64.RawURLEncoding.EncodeToString(cogRandom(32))
	s.mu.Lock()
	s.sessions[id] = sess
	s.mu.Unlock()
	return map[string]any{
		"ChallengeName": "PASSWORD_VERIFIER",
		"Session":       id,
		"ChallengeParameters": map[string]string{
			"SALT":            user.salt.Text(16),
			"SRP_B":           B.Text(16),
			"SECRET_BLOCK":    base64.StdEncoding.EncodeToString(sess.secretBlock),
			"USERNAME":        user.name,
			"USER_ID_FOR_SRP": user.name,
		},
	}, nil
}

func (s *CognitoServer) respondToAuthChallenge(body []byte) (any, *cognitoFault) {
	var in struct {
		ChallengeName      string
		ClientID           string `json:"ClientId"`
		Session            string
		ChallengeResponses map[string]string
	}
	if json.Unmarshal(body, &in) != nil {
		return nil, &cognitoFault{"SerializationException", "malformed JSON"}
	}
	if in.ChallengeName != "PASSWORD_VERIFIER" {
		return nil, cogInvalidParam("unsupported ChallengeName " + in.ChallengeName)
	}
	s.mu.Lock()
	sess, ok := s.sessions[in.Session]
	delete(s.sessions, in.Session) // a session answers once
	s.mu.Unlock()
	now := s.opts.Now()
	if !ok || now.After(sess.expires) || sess.clientID != in.ClientID {
		return nil, &cognitoFault{"NotAuthorizedException", "Invalid session for the user, session is expired."}
	}
	r := in.ChallengeResponses
	user := sess.user
	if r["USERNAME"] != user.name {
		return nil, cogBadCredentials
	}
	if f := s.checkClient(in.ClientID, user.name, r["SECRET_HASH"]); f != nil {
		return nil, f
	}
	ts, err := time.Parse("Mon Jan 2 15:04:05 UTC 2006", r["TIMESTAMP"])
	if err != nil || ts.Format("Mon Jan 2 15:04:05 UTC 2006") != r["TIMESTAMP"] {
		return nil, cogInvalidParam("TIMESTAMP format is invalid")
	}
	if d := now.Sub(ts); d > 5*time.Minute || d < -5*time.Minute {
		return nil, cogBadCredentials
	}
	block, err := base64.StdEncoding.DecodeString(r["PASSWORD_CLAIM_SECRET_BLOCK"])
	if err != nil || !hmac.Equal(block, sess.secretBlock) {
		return nil, cogBadCredentials
	}
	// u = H(A | B); S = (A * v^u)^b mod N; the key is HKDF(S, salt u).
	u := new(big.Int).SetBytes(cogHash(cogSigned(sess.A), cogSigned(sess.B)))
	S := cogSecret(sess.A, sess.B, sess.b, user.verifier)
	prk := cogHMAC(cogSigned(u), cogSigned(S))
	key := cogHMAC(prk, []byte("Caldera Derived Key\x01"))[:16]
	want := cogHMAC(key, []byte(s.poolName), []byte(user.name), block, []byte(r["TIMESTAMP"]))
	got, err := base64.StdEncoding.DecodeString(r["PASSWORD_CLAIM_SIGNATURE"])
	if err != nil || !hmac.Equal(want, got) {
		return nil, cogBadCredentials
	}
	s.logins.Add(1)
	if u.BitLen() <= 248 {
		s.shortU.Add(1)
	}
	if S.BitLen() <= 3064 {
		s.shortS.Add(1)
	}
	return map[string]any{"ChallengeParameters": map[string]string{},
		"AuthenticationResult": s.issue(in.ClientID, user.name, true)}, nil
}

// cogSecret is the server's S = (A * v^u)^b mod N, u = H(A | B).
func cogSecret(A, B, b, v *big.Int) *big.Int {
	u := new(big.Int).SetBytes(cogHash(cogSigned(A), cogSigned(B)))
	S := new(big.Int).Exp(v, u, cogN)
	S.Mul(S, A).Mod(S, cogN)
	return S.Exp(S, b, cogN)
}

type cognitoClaims struct {
	Sub      string `json:"sub"`
	Username string `json:"username,omitempty"`
	CogUser  string `json:"cognito:username,omitempty"`
	TokenUse string `json:"token_use"`
	ClientID string `json:"client_id,omitempty"`
	Aud      string `json:"aud,omitempty"`
	Iss      string `json:"iss"`
	Iat      int64  `json:"iat"`
	Exp      int64  `json:"exp"`
	Jti      string `json:"jti"`
}

// issue makes an access and an id token, and with refresh a refresh token.
func (s *CognitoServer) issue(clientID, user string, refresh bool) map[string]any {
	now := s.opts.Now()
	ttl := int64((s.opts.AccessTTL + time.Second - 1) / time.Second)
	// exp is rounded up, so that it is never before the expiry a client
	// computes from ExpiresIn and the time it sent its call.
	exp := now.Add(time.Duration(ttl)*time.Second + time.Second - 1).Unix()
	base := cognitoClaims{Sub: user, Iss: s.URL + s.PoolID, Iat: now.Unix(), Exp: exp}
	access, id := base, base
	access.TokenUse, access.Username, access.ClientID = "access", user, clientID
	access.Jti = base64.RawURLEncoding.EncodeToString(cogRandom(12))
	id.TokenUse, id.CogUser, id.Aud = "id", user, clientID
	id.Jti = base64.RawURLEncoding.EncodeToString(cogRandom(12))
	out := map[string]any{"AccessToken": s.sign(access), "IdToken": s.sign(id), "ExpiresIn": ttl, "TokenType": "Bearer"}
	if refresh {
		rt := base64.RawURLEncoding.EncodeToString(cogRandom(48))
		s.mu.Lock()
		s.refresh[rt] = user
		s.mu.Unlock()
		out["RefreshToken"] = rt
	}
	return out
}

func (s *CognitoServer) sign(c cognitoClaims) string {
	head := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	payload, _ := json.Marshal(c)
	msg := head + "." + base64.RawURLEncoding.EncodeToString(payload)
	return msg + "." + base64.RawURLEncoding.EncodeToString(cogHMAC(s.key, []byte(msg)))
}

func (s *CognitoServer) verify(tok string) (cognitoClaims, bool) {
	var c cognitoClaims
	i := strings.LastIndexByte(tok, '.')
	if i < 0 {
		return c, false
	}
	sig, err := base64.RawURLEncoding.DecodeString(tok[i+1:])
	if err != nil || !hmac.Equal(sig, cogHMAC(s.key, []byte(tok[:i]))) {
		return c, false
	}
	_, payload, _ := strings.Cut(tok[:i], ".")
	b, err := base64.RawURLEncoding.DecodeString(payload)
	return c, err == nil && json.Unmarshal(b, &c) == nil
}

func cogRandom(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
