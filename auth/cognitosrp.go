package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"io"
	"math/big"
	"time"
)

// Amazon Cognito's variant of SRP-6a (RFC 5054), as user pools run it for
// USER_SRP_AUTH. Where it departs from the RFC it is noted: every one of
// those departures, if got wrong, fails only for some inputs, so the
// tests run many random users, passwords and salts.

// srpN is the 3072-bit prime of RFC 5054 appendix A (the RFC 3526 MODP
// group 15 prime); srpG is its generator.
var (
	srpN, _ = new(big.Int).SetString(""+
		"FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD1"+
		"29024E088A67CC74020BBEA63B139B22514A08798E3404DD"+
		"EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245"+
		"E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"+
		"EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3D"+
		"C2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F"+
		"83655D23DCA3AD961C62F356208552BB9ED529077096966D"+
		"670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"+
		"E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9"+
		"DE2BCBF6955817183995497CEA956AE515D2261898FA0510"+
		"15728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64"+
		"ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7"+
		"ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6B"+
		"F12FFA06D98A0864D87602733EC86A64521F2B18177B200C"+
		"BBE117577A615D6C770988C0BAD946E208E24FA074E5AB31"+
		"43DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF", 16)
	srpG = big.NewInt(2)
	// srpK is the multiplier k = H(N | g). RFC 5054 pads g to the length
	// of N; Cognito instead hashes both in its own minimal form (srpPad).
	srpK = new(big.Int).SetBytes(srpHash(srpPad(srpN), srpPad(srpG)))
)

// cognitoTimeLayout is the TIMESTAMP format Cognito signs and checks:
// the day of the month is not padded ("Tue Mar 3 09:04:05 UTC 2026"),
// the time always is.
const cognitoTimeLayout = "Mon Jan 2 15:04:05 UTC 2006"

// cognitoTimestamp formats t as Cognito expects it, in UTC.
func cognitoTimestamp(t time.Time) string { return t.UTC().Format(cognitoTimeLayout) }

// errSRPParameters: the server's B or the resulting u is zero modulo N,
// which would let anyone pass without the password (RFC 5054 §2.5.4).
var errSRPParameters = errors.New("auth: cognito_srp: the server sent unsafe SRP parameters")

// srpPad is how Cognito turns a non-negative integer into bytes wherever
// it hashes one: big-endian, as few bytes as hold it, plus a leading zero
// byte when the top bit of the first byte is set (a two's-complement
// encoding that keeps the number positive). So a value whose first byte is
// 0x80 or more grows by a byte, and one that happens to be short (a salt
// or a u with leading zero bytes) is hashed short: neither is padded to
// the length of N.
func srpPad(x *big.Int) []byte {
	b := x.Bytes()
	if len(b) == 0 || b[0]&0x80 != 0 {
		return append([]byte{0}, b...)
	}
	return b
}

// srpHash is SHA-256 over the concatenated parts.
func srpHash(parts ...[]byte) []byte {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}

// srpClient is one login's ephemeral key pair.
type srpClient struct {
	a, A *big.Int
}

// newSRPClient draws a, 128 random bytes as Cognito's clients do, and
// A = g^a mod N.
func newSRPClient(rand io.Reader) (*srpClient, error) {
	buf := make([]byte, 128)
	for {
		if _, err := io.ReadFull(rand, buf); err != nil {
			return nil, err
		}
		a := new(big.Int).SetBytes(buf)
		A := new(big.Int).Exp(srpG, a, srpN)
		if A.Sign() != 0 { // never, for a of this size; checked as the RFC asks
			return &srpClient{a: a, A: A}, nil
		}
	}
}

// passwordKey derives the 16-byte key that signs the PASSWORD_VERIFIER
// answer. poolName is the part of the pool id after the underscore and
// userID the server's USER_ID_FOR_SRP.
func (c *srpClient) passwordKey(poolName, userID, password string, B, salt *big.Int) ([]byte, error) {
	if new(big.Int).Mod(B, srpN).Sign() == 0 {
		return nil, errSRPParameters
	}
	u := new(big.Int).SetBytes(srpHash(srpPad(c.A), srpPad(B)))
	if u.Sign() == 0 {
		return nil, errSRPParameters
	}
	// x = H(salt | H(poolName | userID | ":" | password)): the inner hash is
	// always 32 bytes; the salt is hashed in its minimal form.
	inner := srpHash([]byte(poolName + userID + ":" + password))
	x := new(big.Int).SetBytes(srpHash(srpPad(salt), inner))
	// S = (B - k*g^x)^(a + u*x) mod N. The base may come out negative;
	// Mod brings it into [0, N), which leaves the power unchanged.
	gx := new(big.Int).Exp(srpG, x, srpN)
	base := new(big.Int).Sub(B, new(big.Int).Mul(srpK, gx))
	base.Mod(base, srpN)
	exp := new(big.Int).Add(c.a, new(big.Int).Mul(u, x))
	S := new(big.Int).Exp(base, exp, srpN)
	return cognitoHKDF(srpPad(S), srpPad(u)), nil
}

// cognitoHKDF is HKDF-SHA256 (RFC 5869) cut to Cognito's use: u, in its
// minimal form, is the salt, S the input key material, "Caldera Derived
// Key" the info, and only the first 16 bytes of the first block are kept.
func cognitoHKDF(ikm, salt []byte) []byte {
	extract := hmac.New(sha256.New, salt)
	extract.Write(ikm)
	expand := hmac.New(sha256.New, extract.Sum(nil))
	expand.Write([]byte("Caldera Derived Key"))
	expand.Write([]byte{1})
	return expand.Sum(nil)[:16]
}

// passwordSignature is PASSWORD_CLAIM_SIGNATURE before base64: an HMAC
// under the password key over the pool name, the user, the server's
// secret block (decoded) and the timestamp sent beside it.
func passwordSignature(key []byte, poolName, userID string, secretBlock []byte, timestamp string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(poolName))
	m.Write([]byte(userID))
	m.Write(secretBlock)
	m.Write([]byte(timestamp))
	return m.Sum(nil)
}

// cognitoSecretHash is SECRET_HASH, which app clients with a secret must
// send: HMAC-SHA256 keyed by the client secret over username + client id.
func cognitoSecretHash(clientSecret, username, clientID string) []byte {
	m := hmac.New(sha256.New, []byte(clientSecret))
	m.Write([]byte(username + clientID))
	return m.Sum(nil)
}

// parseSRPHex reads a challenge parameter in hex, as Cognito sends SRP_B
// and SALT (no fixed length, no sign).
func parseSRPHex(s string) (*big.Int, bool) {
	if s == "" || len(s) > 2048 {
		return nil, false
	}
	for _, c := range s { // SetString would also take a sign
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return nil, false
		}
	}
	return new(big.Int).SetString(s, 16)
}
