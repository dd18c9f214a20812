package auth_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tokencache/tokencache/auth"
)

func p521PEM(t *testing.T, pkcs8 bool) (*ecdsa.PrivateKey, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var block *pem.Block
	if pkcs8 {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		block = &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	} else {
		der, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		block = &pem.Block{Type: "EC PRIVATE KEY", Bytes: der}
	}
	// openssl ecparam -genkey without -noout writes the parameters first.
	params := pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{6, 5, 43, 129, 4, 0, 35}})
	return key, string(params) + string(pem.EncodeToMemory(block))
}

// verifyES512 checks a JWT as the server would, with the public key only,
// and returns its header and claims.
func verifyES512(t *testing.T, pub *ecdsa.PublicKey, tok string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 132 {
		t.Fatalf("signature: %d bytes, %v; want 132 (R||S, 66 bytes each)", len(sig), err)
	}
	r, s := new(big.Int).SetBytes(sig[:66]), new(big.Int).SetBytes(sig[66:])
	digest := sha512.Sum512([]byte(parts[0] + "." + parts[1]))
	if !ecdsa.Verify(pub, digest[:], r, s) {
		t.Fatal("signature does not verify with the public key")
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	return header, claims
}

func TestJWT(t *testing.T) {
	for _, pkcs8 := range []bool{false, true} {
		key, pemText := p521PEM(t, pkcs8)
		clk := &clock{t: time.Unix(1_700_000_000, 0)}
		var got []string
		srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
			tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok {
				w.WriteHeader(http.StatusUnauthorized)
			}
			got = append(got, tok)
		})
		a, err := auth.New("jwt_es512", auth.Params{
			"private_key": pemText,
			"issuer":      "eyJpc3N1ZXIiOiJzZWN1cmV3b3JrcyJ9.long.issuer",
			"cid":         "Y2xpZW50",
			"audience":    "myinstance",
			"subject":     "user:123",
			"scopes":      []any{"read_only", "full_access"},
		}, auth.Env{Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		send(t, a, "GET", srv.URL)
		header, claims := verifyES512(t, &key.PublicKey, got[0])
		if !reflect.DeepEqual(header, map[string]any{"alg": "ES512", "typ": "JWT"}) {
			t.Errorf("header = %v", header)
		}
		iat := float64(clk.Now().Unix())
		want := map[string]any{
			"iss": "eyJpc3N1ZXIiOiJzZWN1cmV3b3JrcyJ9.long.issuer", "iat": iat, "exp": iat + 60,
			"aud": "myinstance", "sub": "user:123", "cid": "Y2xpZW50",
			"scp": []any{"read_only", "full_access"},
		}
		if !reflect.DeepEqual(claims, want) {
			t.Errorf("claims = %v\nwant %v", claims, want)
		}

		// Cached while it has more than a quarter of its life left, then re-signed.
		clk.Add(40 * time.Second)
		send(t, a, "GET", srv.URL)
		clk.Add(6 * time.Second)
		send(t, a, "GET", srv.URL)
		if got[1] != got[0] {
			t.Error("token re-signed while still fresh")
		}
		if got[2] == got[1] {
			t.Fatal("token not re-signed 14 s before expiry")
		}
		if _, claims := verifyES512(t, &key.PublicKey, got[2]); claims["iat"] != float64(clk.Now().Unix()) {
			t.Errorf("re-signed iat = %v, want %v", claims["iat"], clk.Now().Unix())
		}
		ts, _ := auth.TokenSource(t.Context(), a)
		if tok, err := ts.Token(); err != nil || tok.AccessToken != got[2] || !tok.Expiry.Equal(clk.Now().Add(time.Minute)) {
			t.Errorf("TokenSource = %+v, %v", tok, err)
		}
	}
}

func TestJWTKeyErrors(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalECPrivateKey(p256)
	wrongCurve := string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	_, good := p521PEM(t, false)
	file := filepath.Join(t.TempDir(), "key.pem")
	os.WriteFile(file, []byte(good), 0o600)
	for _, tc := range []struct {
		p      auth.Params
		option string
	}{
		{auth.Params{"issuer": "i", "cid": "c"}, "private_key"},
		{auth.Params{"private_key": wrongCurve, "issuer": "i", "cid": "c"}, "private_key"},
		{auth.Params{"private_key": "not pem", "issuer": "i", "cid": "c"}, "private_key"},
		{auth.Params{"private_key": good, "cid": "c"}, "issuer"},
		{auth.Params{"private_key": good, "issuer": "i"}, "cid"},
		{auth.Params{"private_key_file": file + ".missing", "issuer": "i", "cid": "c"}, "private_key_file"},
		{auth.Params{"private_key_file": file, "issuer": "i", "cid": "c"}, ""},
	} {
		_, err := auth.New("jwt_es512", tc.p, auth.Env{})
		var oe *auth.OptionError
		switch {
		case tc.option == "" && err != nil:
			t.Errorf("%s: %v", tc.option, err)
		case tc.option != "" && (!errors.As(err, &oe) || oe.Option != tc.option):
			t.Errorf("want an OptionError for %q, got %v", tc.option, err)
		}
	}
}
