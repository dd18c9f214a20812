package credentials

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"strings"
	"time"

	"github.com/tokencache/tokencache/secret"
)

// Token is an access token and when it stops being usable. Tokens are
// immutable and shared: Credentials hands the same *Token to every caller
// until it is replaced, which is what keeps the cached path allocation-free.
type Token struct {
	AccessToken secret.Secret
	TokenType   string    // "Bearer" unless the server said otherwise
	Expiry      time.Time // zero when the server gave no lifetime

	validUntil time.Time // Expiry minus the skew: stop handing it out
	renewAt    time.Time // start a background refresh from here on
	// quietUntil is the earlier of the two, or the end of time for a
	// token without expiry: before it, Token's cached path has nothing to
	// check but this one comparison.
	quietUntil time.Time
}

// Valid reports whether the token can be sent at time now, with the skew
// the Credentials that made it was configured with.
func (t *Token) Valid(now time.Time) bool {
	return t != nil && t.AccessToken != "" && (t.validUntil.IsZero() || now.Before(t.validUntil))
}

// ValidUntil is when the token stops being handed out: Expiry less the
// skew; zero when the expiry is unknown.
func (t *Token) ValidUntil() time.Time { return t.validUntil }

func (t *Token) dueForRenewal(now time.Time) bool {
	return !t.renewAt.IsZero() && !now.Before(t.renewAt)
}

// AuthorizationHeader returns the value of the Authorization header.
func (t *Token) AuthorizationHeader() string {
	typ := t.TokenType
	if typ == "" || strings.EqualFold(typ, "bearer") {
		typ = "Bearer"
	}
	return typ + " " + t.AccessToken.Reveal()
}

// newToken makes a Token that stops being handed out skew before expiry
// and is renewed in the background from ahead before expiry, moved later
// by spread (a fraction in [0, 1)) of the window between the two.
func newToken(access secret.Secret, typ string, expiry time.Time, skew, ahead time.Duration, spread float64) *Token {
	t := &Token{AccessToken: access, TokenType: typ, Expiry: expiry, quietUntil: endOfTime}
	if !expiry.IsZero() {
		t.validUntil = expiry.Add(-skew)
		start := max(ahead, skew)
		t.renewAt = expiry.Add(-start + time.Duration(spread*float64(start-skew)))
		t.quietUntil = t.renewAt
		if t.validUntil.Before(t.renewAt) {
			t.quietUntil = t.validUntil
		}
	}
	if access == "" {
		t.quietUntil = time.Time{}
	}
	return t
}

// endOfTime is later than any token's expiry.
var endOfTime = time.Unix(1<<62, 0)

// renewalPoint returns where in its renewal window a token is renewed, as
// a fraction: mostly fixed by the token itself, so that every replica
// agrees and the renewals of tokens issued together spread evenly over the
// window (if each replica drew its own point, the earliest of R draws
// would do the work, and those crowd the window's start); plus this
// process's draw r over the last twentieth, so that replicas reach one
// token at slightly different moments and the first one's lease is there
// for the others to find instead of a race for it.
func renewalPoint(access secret.Secret, r float64) float64 {
	sum := sha256.Sum256([]byte(access))
	return float64(binary.BigEndian.Uint64(sum[:8])>>11)/(1<<53)*0.95 + r*0.05
}

// JWTExpiry returns the exp claim of a JWT without verifying it: the
// token is the server's to check, we only need to know when to renew it.
// ok is false when token is not a JWT or has no usable exp.
func JWTExpiry(token string) (exp time.Time, ok bool) {
	first := strings.IndexByte(token, '.')
	if first < 0 {
		return time.Time{}, false
	}
	rest := token[first+1:]
	second := strings.IndexByte(rest, '.')
	if second < 0 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(rest[:second], "="))
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp json.Number `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.Exp == "" {
		return time.Time{}, false
	}
	f, err := claims.Exp.Float64()
	// Bound exp to years 1970..9999 so that garbage cannot overflow time.
	if err != nil || f <= 0 || f > 253402300799 {
		return time.Time{}, false
	}
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9)).UTC(), true
}
