package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/tokencache/tokencache/secret"
)

func init() { registerConfig("jwt_es512", NewJWT) }

// JWTConfig configures self-signed ES512 JWTs: the client signs
// a short-lived token with its own P-521 key, whose public half the server
// holds, and sends it as a bearer token.
type JWTConfig struct {
	// PrivateKey is the PEM key, SEC1 ("EC PRIVATE KEY", as openssl
	// ecparam -genkey writes it) or PKCS#8 ("PRIVATE KEY");
	// PrivateKeyFile names a file holding it instead.
	PrivateKey     secret.Secret `json:"private_key"`
	PrivateKeyFile string        `json:"private_key_file"`
	Issuer         string        `json:"issuer"`   // iss, as the server's operator issued it
	ClientID       string        `json:"cid"`      // cid
	Audience       string        `json:"audience"` // aud: the instance name; omitted when empty
	Subject        string        `json:"subject"`  // sub, e.g. "user:123"; omitted when empty
	Scopes         []string      `json:"scopes"`   // scp; omitted when empty
	// TTL is exp - iat; default 60 s, so that a leaked token is soon useless.
	TTL time.Duration `json:"ttl"`
}

// JWT signs tokens in memory and re-signs them before they expire; they
// are cheap to make and worthless to share, so no store is involved.
type JWT struct {
	printable
	key     *ecdsa.PrivateKey
	claims  JWTConfig
	now     func() time.Time
	secrets secrets

	mu     sync.Mutex
	token  string
	expiry time.Time
}

// jwtHeader is fixed: the one algorithm this scheme signs with.
var jwtHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES512","typ":"JWT"}`))

// NewJWT returns a JWT authorizer.
func NewJWT(c JWTConfig, env Env) (*JWT, error) {
	const scheme = "jwt_es512"
	opt := func(name, reason string) error { return &OptionError{Scheme: scheme, Option: name, Reason: reason} }
	pemKey := c.PrivateKey
	switch {
	case pemKey != "" && c.PrivateKeyFile != "":
		return nil, opt("private_key_file", "set private_key or private_key_file, not both")
	case c.PrivateKeyFile != "":
		b, err := os.ReadFile(c.PrivateKeyFile)
		if err != nil {
			reason := "cannot read it"
			if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
				reason += ": " + pe.Err.Error()
			}
			return nil, opt("private_key_file", reason)
		}
		pemKey = secret.Secret(b)
	case pemKey == "":
		return nil, opt("private_key", "required")
	}
	key, reason := parseP521(pemKey)
	if reason != "" {
		return nil, opt("private_key", reason)
	}
	switch {
	case c.Issuer == "":
		return nil, opt("issuer", "required")
	case c.ClientID == "":
		return nil, opt("cid", "required")
	case c.TTL == 0:
		c.TTL = time.Minute
	case c.TTL < 4*time.Second:
		return nil, opt("ttl", "must be at least 4s")
	}
	now := env.Now
	if now == nil {
		now = time.Now
	}
	j := &JWT{printable: printable{"JWT"}, key: key, claims: c, now: now, secrets: newSecrets(env.Masker, scheme)}
	j.secrets.set("private_key", pemKey)
	return j, nil
}

// parseP521 returns the P-521 key in a PEM text, skipping the "EC
// PARAMETERS" block openssl writes without -noout. Reasons never quote
// the key.
func parseP521(text secret.Secret) (*ecdsa.PrivateKey, string) {
	rest := []byte(text.Reveal())
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, "no EC PRIVATE KEY or PRIVATE KEY PEM block"
		}
		var key any
		var err error
		switch block.Type {
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, "malformed " + block.Type
		}
		ec, ok := key.(*ecdsa.PrivateKey)
		if !ok || ec.Curve != elliptic.P521() {
			return nil, "want an ECDSA key on curve P-521 (secp521r1) for ES512"
		}
		return ec, ""
	}
}

// Token returns a token valid for at least a quarter of its TTL, signing
// a new one when the current one is older.
func (j *JWT) Token() (string, time.Time, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	now := j.now()
	if j.token != "" && now.Before(j.expiry.Add(-j.claims.TTL/4)) {
		return j.token, j.expiry, nil
	}
	iat := now.Unix()
	exp := iat + int64(j.claims.TTL/time.Second)
	c := j.claims
	payload, err := json.Marshal(struct {
		Iss string   `json:"iss"`
		Iat int64    `json:"iat"`
		Exp int64    `json:"exp"`
		Aud string   `json:"aud,omitempty"`
		Sub string   `json:"sub,omitempty"`
		Cid string   `json:"cid"`
		Scp []string `json:"scp,omitempty"`
	}{c.Issuer, iat, exp, c.Audience, c.Subject, c.ClientID, c.Scopes})
	if err != nil {
		return "", time.Time{}, err
	}
	input := jwtHeader + "." + base64.RawURLEncoding.EncodeToString(payload)
	digest := sha512.Sum512([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, j.key, digest[:])
	if err != nil {
		return "", time.Time{}, err
	}
	// RFC 7518 §3.4: R and S as fixed-width big-endian integers, 66 bytes
	// each for P-521, concatenated; not the ASN.1 form crypto returns.
	sig := make([]byte, 132)
	r.FillBytes(sig[:66])
	s.FillBytes(sig[66:])
	j.token = input + "." + base64.RawURLEncoding.EncodeToString(sig)
	j.expiry = time.Unix(exp, 0)
	j.secrets.set("token", secret.Secret(j.token))
	return j.token, j.expiry, nil
}

// Authorize sets "Authorization: Bearer <jwt>".
func (j *JWT) Authorize(_ context.Context, req *http.Request) error {
	tok, _, err := j.Token()
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	return nil
}

// TokenSource returns the tokens for golang.org/x/oauth2.
func (j *JWT) TokenSource(context.Context) oauth2.TokenSource {
	return tokenSourceFunc(func() (*oauth2.Token, error) {
		tok, exp, err := j.Token()
		if err != nil {
			return nil, err
		}
		return &oauth2.Token{AccessToken: tok, TokenType: "Bearer", Expiry: exp}, nil
	})
}
