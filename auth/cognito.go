package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
)

func init() { registerConfig(cognitoSRPScheme, NewCognitoSRP) }

const cognitoSRPScheme = "cognito_srp"

// ErrUnsupportedChallenge: the user pool asked for a challenge this scheme
// does not answer (a new password, MFA, a custom challenge). A person must
// complete it once, with another client; retrying will not help.
var ErrUnsupportedChallenge = errors.New("auth: cognito_srp: unsupported challenge")

// CognitoSRPConfig configures a user login to an Amazon Cognito user pool
// with SRP (the USER_SRP_AUTH flow): the password never leaves the
// process, only a proof that the client knows it. Tokens are renewed with
// the refresh token (REFRESH_TOKEN_AUTH), and when that is refused the
// user logs in again.
type CognitoSRPConfig struct {
	// UserPoolID is the pool's id, "<region>_<pool name>", such as
	// "us-east-1_AbCdEf123". The pool name is part of the password proof.
	UserPoolID string `json:"user_pool_id"`
	ClientID   string `json:"client_id"`
	// ClientSecret is the app client's secret, for clients that have one:
	// every call then carries its SECRET_HASH.
	ClientSecret secret.Secret `json:"client_secret"`
	Username     string        `json:"username"`
	Password     secret.Secret `json:"password"`
	// Endpoint is the Cognito user pools API; default
	// https://cognito-idp.<region>.amazonaws.com/.
	Endpoint string `json:"endpoint"`
	// Token is the token sent: "access" (default) or "id" (what API
	// Gateway's Cognito authorizers take).
	Token string `json:"token"`
	// Header and Format place the token; default Authorization and "Bearer {}".
	Header string `json:"header"`
	Format string `json:"format"`
	// APIKey, when set, goes with every request beside the token, in
	// APIKeyHeader (default X-Api-Key).
	APIKey       secret.Secret `json:"api_key"`
	APIKeyHeader string        `json:"api_key_header"`
}

func (c *CognitoSRPConfig) validate() (poolName string, err error) {
	opt := func(name, reason string) error {
		return &OptionError{Scheme: cognitoSRPScheme, Option: name, Reason: reason}
	}
	region, poolName, ok := strings.Cut(c.UserPoolID, "_")
	if !ok || region == "" || poolName == "" || strings.Contains(poolName, "_") {
		return "", opt("user_pool_id", `want "<region>_<pool name>"`)
	}
	switch {
	case c.ClientID == "":
		return "", opt("client_id", "required")
	case c.Username == "":
		return "", opt("username", "required")
	case c.Password == "":
		return "", opt("password", "required")
	}
	if c.Endpoint == "" {
		c.Endpoint = "https://cognito-idp." + region + ".amazonaws.com/"
	}
	if u, err := url.Parse(c.Endpoint); err != nil || !u.IsAbs() {
		return "", opt("endpoint", "want an absolute URL")
	}
	switch c.Token {
	case "":
		c.Token = "access"
	case "access", "id":
	default:
		return "", opt("token", `want "access" or "id"`)
	}
	return poolName, nil
}

// Grant returns the grant, for use in a credentials.Config of your own.
func (c CognitoSRPConfig) Grant(client *http.Client) (credentials.Grant, error) {
	poolName, err := c.validate()
	if err != nil {
		return nil, err
	}
	// The caller's client may follow redirects: the requests carry the
	// refresh token, SECRET_HASH and the password proof.
	client = grantClient(client)
	return &cognitoGrant{cfg: c, poolName: poolName, client: client, now: time.Now, rand: rand.Reader}, nil
}

type cognitoGrant struct {
	cfg      CognitoSRPConfig
	poolName string
	client   *http.Client
	now      func() time.Time
	rand     io.Reader
	secrets  secrets // set by NewCognitoSRP, to mask refresh tokens
}

// cognitoAuthResult is Cognito's AuthenticationResultType.
type cognitoAuthResult struct {
	AccessToken  string `json:"AccessToken"`
	IDToken      string `json:"IdToken"`
	RefreshToken string `json:"RefreshToken"`
	ExpiresIn    int64  `json:"ExpiresIn"`
	TokenType    string `json:"TokenType"`
}

// cognitoAnswer is the answer to InitiateAuth and RespondToAuthChallenge.
type cognitoAnswer struct {
	ChallengeName        string             `json:"ChallengeName"`
	ChallengeParameters  map[string]string  `json:"ChallengeParameters"`
	Session              string             `json:"Session"`
	AuthenticationResult *cognitoAuthResult `json:"AuthenticationResult"`
}

// Obtain implements credentials.Grant: the stored refresh token first,
// which needs no password proof, then a full SRP login when the pool no
// longer accepts it (expired, revoked, signed out).
func (g *cognitoGrant) Obtain(ctx context.Context, rec *storage.Record) (*credentials.Tokens, error) {
	if rec.RefreshToken != "" {
		g.secrets.set("refresh_token", rec.RefreshToken) // another process may have stored it
		params := map[string]string{"REFRESH_TOKEN": rec.RefreshToken.Reveal()}
		g.secretHash(params, cognitoUser(rec.AccessToken, g.cfg.Username))
		t, err := g.tokens(g.call(ctx, "InitiateAuth", map[string]any{
			"AuthFlow": "REFRESH_TOKEN_AUTH", "ClientId": g.cfg.ClientID, "AuthParameters": params}))
		if !errors.Is(err, credentials.ErrInvalidGrant) {
			return t, err
		}
	}
	return g.login(ctx)
}

func (g *cognitoGrant) login(ctx context.Context) (*credentials.Tokens, error) {
	c, err := newSRPClient(g.rand)
	if err != nil {
		return nil, err
	}
	params := map[string]string{"USERNAME": g.cfg.Username, "SRP_A": c.A.Text(16)}
	g.secretHash(params, g.cfg.Username)
	ans, _, err := g.call(ctx, "InitiateAuth", map[string]any{
		"AuthFlow": "USER_SRP_AUTH", "ClientId": g.cfg.ClientID, "AuthParameters": params})
	if err != nil {
		return nil, err
	}
	if ans.ChallengeName != "PASSWORD_VERIFIER" {
		return nil, g.unexpected(ans)
	}
	cp := ans.ChallengeParameters
	// The pool may know the user by another name (an alias such as an
	// email address logs in as the user's own name): the proof and the
	// answer use the pool's.
	userID := cmp(cp["USER_ID_FOR_SRP"], cp["USERNAME"], g.cfg.Username)
	B, okB := parseSRPHex(cp["SRP_B"])
	salt, okS := parseSRPHex(cp["SALT"])
	block, errBlock := base64.StdEncoding.DecodeString(cp["SECRET_BLOCK"])
	if !okB || !okS || errBlock != nil || len(block) == 0 {
		return nil, g.malformed("the PASSWORD_VERIFIER challenge lacks a valid SRP_B, SALT or SECRET_BLOCK")
	}
	key, err := c.passwordKey(g.poolName, userID, g.cfg.Password.Reveal(), B, salt)
	if err != nil {
		return nil, &credentials.EndpointError{URL: secret.RedactURL(g.cfg.Endpoint), StatusCode: http.StatusOK, Err: err}
	}
	ts := cognitoTimestamp(g.now())
	answers := map[string]string{
		"USERNAME":                    userID,
		"PASSWORD_CLAIM_SECRET_BLOCK": cp["SECRET_BLOCK"],
		"TIMESTAMP":                   ts,
		"PASSWORD_CLAIM_SIGNATURE":    base64.StdEncoding.EncodeToString(passwordSignature(key, g.poolName, userID, block, ts)),
	}
	g.secretHash(answers, userID)
	return g.tokens(g.call(ctx, "RespondToAuthChallenge", map[string]any{
		"ChallengeName": "PASSWORD_VERIFIER", "ClientId": g.cfg.ClientID,
		"Session": ans.Session, "ChallengeResponses": answers}))
}

// secretHash adds SECRET_HASH for clients with a secret.
func (g *cognitoGrant) secretHash(params map[string]string, username string) {
	if g.cfg.ClientSecret != "" {
		params["SECRET_HASH"] = base64.StdEncoding.EncodeToString(
			cognitoSecretHash(g.cfg.ClientSecret.Reveal(), username, g.cfg.ClientID))
	}
}

// tokens reads the tokens out of a final answer.
func (g *cognitoGrant) tokens(ans *cognitoAnswer, sent time.Time, err error) (*credentials.Tokens, error) {
	if err != nil {
		return nil, err
	}
	r := ans.AuthenticationResult
	if r == nil {
		return nil, g.unexpected(ans)
	}
	tok := r.AccessToken
	if g.cfg.Token == "id" {
		tok = r.IDToken
	}
	if tok == "" {
		return nil, g.malformed("the authentication result has no " + g.cfg.Token + " token")
	}
	t := &credentials.Tokens{AccessToken: secret.Secret(tok), TokenType: cmp(r.TokenType, "Bearer"),
		RefreshToken: secret.Secret(r.RefreshToken)}
	if r.ExpiresIn > 0 {
		t.Expiry = sent.Add(time.Duration(r.ExpiresIn) * time.Second)
	}
	if t.RefreshToken != "" {
		g.secrets.set("refresh_token", t.RefreshToken)
	}
	return t, nil
}

// unexpected reports an answer that is neither the next step nor tokens:
// most often a challenge this scheme does not answer.
func (g *cognitoGrant) unexpected(ans *cognitoAnswer) error {
	if ans.ChallengeName == "" {
		return g.malformed("the answer has neither a challenge nor an authentication result")
	}
	return &credentials.EndpointError{URL: secret.RedactURL(g.cfg.Endpoint), StatusCode: http.StatusOK, Code: truncate(ans.ChallengeName, 64),
		Description: "the user pool asks for a challenge this scheme does not answer; complete it once with another client",
		Err:         ErrUnsupportedChallenge}
}

func (g *cognitoGrant) malformed(desc string) error {
	return &credentials.EndpointError{URL: secret.RedactURL(g.cfg.Endpoint), StatusCode: http.StatusOK,
		Err: credentials.ErrNotTokenEndpoint, Description: desc}
}

// call makes one Cognito API call (the AWS JSON 1.1 protocol). It
// returns when the request left, the origin of ExpiresIn. Failures are
// *credentials.EndpointError whose Code is Cognito's exception name and
// whose Err says what it means to the refresh protocol.
func (g *cognitoGrant) call(ctx context.Context, action string, in any) (*cognitoAnswer, time.Time, error) {
	body, err := json.Marshal(in)
	if err != nil {
		return nil, time.Time{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.cfg.Endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, time.Time{}, err
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "AWSCognitoIdentityProviderService."+action)
	where := redact(req.URL)
	sent := g.now()
	resp, b, err := credentials.DoEndpointRequest(g.client, req)
	if resp == nil {
		// No answer, a redirect, a body cut short: as any endpoint's.
		return nil, sent, err
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	isJSON := mt == "application/json" || strings.HasPrefix(mt, "application/x-amz-json")
	if err != nil {
		// An error answer: Cognito names its exceptions in members of
		// its own.
		return nil, sent, cognitoError(where, resp, b, isJSON)
	}
	var ans cognitoAnswer
	if err := json.Unmarshal(b, &ans); err != nil {
		cause := credentials.ErrNotTokenEndpoint // a page that is not JSON: the wrong URL
		if isJSON {
			cause = credentials.ErrMalformedResponse // cut short: the server may have acted
		}
		return nil, sent, &credentials.EndpointError{URL: where, StatusCode: resp.StatusCode, Response: resp, ContentType: mt,
			Err: cause, Description: "the answer is not a Cognito JSON document"}
	}
	return &ans, sent, nil
}

// cognitoError turns a Cognito error answer into an *EndpointError. The
// exception's name is in the body's __type (after any '#') or the
// x-amzn-ErrorType header (before any ':').
func cognitoError(where string, resp *http.Response, body []byte, isJSON bool) error {
	var doc struct {
		Type     string `json:"__type"`
		Code     string `json:"code"`
		Message  string `json:"message"`
		MessageU string `json:"Message"`
	}
	jsonErr := json.Unmarshal(body, &doc)
	name := cmp(doc.Type, doc.Code)
	if name == "" {
		name, _, _ = strings.Cut(resp.Header.Get("X-Amzn-Errortype"), ":")
	}
	name = name[strings.LastIndexByte(name, '#')+1:]
	ee := &credentials.EndpointError{URL: where, StatusCode: resp.StatusCode, Response: resp,
		Code: truncate(name, 64), Description: truncate(cmp(doc.Message, doc.MessageU), 200)}
	msg := strings.ToLower(ee.Description)
	switch name {
	case "NotAuthorizedException":
		// Cognito's one refusal covers a wrong password, a dead refresh
		// token and a wrong SECRET_HASH; only the message tells them apart.
		if strings.Contains(msg, "secret hash") || strings.Contains(msg, "secret_hash") || strings.Contains(msg, "client secret") {
			ee.Err = credentials.ErrInvalidClient
		} else {
			ee.Err = credentials.ErrInvalidGrant
		}
	case "UserNotFoundException", "UserNotConfirmedException", "PasswordResetRequiredException":
		ee.Err = credentials.ErrInvalidGrant
	case "ResourceNotFoundException", "InvalidUserPoolConfigurationException":
		ee.Err = credentials.ErrInvalidClient
	case "":
		if jsonErr != nil && !isJSON && resp.StatusCode != 429 && resp.StatusCode < 500 {
			ee.ContentType, ee.Err = resp.Header.Get("Content-Type"), credentials.ErrNotTokenEndpoint
		}
	}
	return ee
}

// cognitoUser is the user a stored token was issued to, which the
// SECRET_HASH of a refresh must name: Cognito's access tokens carry it as
// "username", id tokens as "cognito:username". The claim is read, not
// verified: it only picks the name, which the pool then checks.
func cognitoUser(token secret.Secret, fallback string) string {
	parts := strings.Split(token.Reveal(), ".")
	if len(parts) != 3 {
		return fallback
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return fallback
	}
	var claims struct {
		Username  string `json:"username"`
		CognitoUN string `json:"cognito:username"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return fallback
	}
	return cmp(claims.Username, claims.CognitoUN, fallback)
}

// cmp returns the first of its arguments that is not empty.
func cmp(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// NewCognitoSRP returns an authorizer that sends the tokens of a Cognito
// user pool login, cached with the refresh token in env.Store.
func NewCognitoSRP(c CognitoSRPConfig, env Env) (*TokenAuthorizer, error) {
	g, err := c.Grant(env.client())
	if err != nil {
		return nil, err
	}
	cg := g.(*cognitoGrant)
	if env.Now != nil {
		cg.now = env.Now
	}
	header, format, err := headerOptions(cognitoSRPScheme, c.Header, c.Format)
	if err != nil {
		return nil, err
	}
	extra, err := apiKeyHeaders(cognitoSRPScheme, c.APIKeyHeader, c.APIKey, nil)
	if err != nil {
		return nil, err
	}
	oc := &oauthClient{clientID: c.ClientID, tokenURL: cg.cfg.Endpoint}
	a, err := newTokenAuthorizer(env, tokenOptions{scheme: cognitoSRPScheme, grant: g, header: header, format: format,
		password: true, ensure: oc.fits(cognitoSRPScheme, c.UserPoolID+"/"+c.Username),
		clientID: c.ClientID, username: c.Username, extra: extra,
		secrets: map[string][]secret.Secret{"client_secret": {c.ClientSecret}, "password": {c.Password}, "api_key": {c.APIKey}}})
	if err == nil {
		cg.secrets = a.secrets
	}
	return a, err
}
