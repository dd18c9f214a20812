package auth

import (
	"bytes"
	"crypto/rand"
	"math/big"
	"testing"
	"time"
)

// TestCognitoTimestamp: Cognito's TIMESTAMP has no zero-padded day but a
// padded time ("Mon Jan 2 15:04:05 UTC 2006"), in UTC whatever the zone.
func TestCognitoTimestamp(t *testing.T) {
	est := time.FixedZone("EST", -5*3600)
	for _, tc := range []struct {
		t    time.Time
		want string
	}{
		{time.Date(2026, 3, 3, 9, 4, 5, 0, time.UTC), "Tue Mar 3 09:04:05 UTC 2026"},
		{time.Date(2026, 11, 30, 23, 59, 59, 999, time.UTC), "Mon Nov 30 23:59:59 UTC 2026"},
		{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), "Thu Jan 1 00:00:00 UTC 2026"},
		{time.Date(2025, 12, 31, 20, 0, 0, 0, est), "Thu Jan 1 01:00:00 UTC 2026"},
	} {
		if got := cognitoTimestamp(tc.t); got != tc.want {
			t.Errorf("cognitoTimestamp(%v) = %q; want %q", tc.t, got, tc.want)
		}
	}
}

// TestSRPPad: minimal big-endian bytes, with a zero byte in front when the
// top bit is set; zero is one zero byte.
func TestSRPPad(t *testing.T) {
	for _, tc := range []struct {
		hex  string
		want []byte
	}{
		{"0", []byte{0}},
		{"1", []byte{1}},
		{"7f", []byte{0x7f}},
		{"80", []byte{0, 0x80}},
		{"ff", []byte{0, 0xff}},
		{"100", []byte{1, 0}},
		{"000000ab", []byte{0, 0xab}},
		{"0012", []byte{0x12}},
	} {
		x, _ := new(big.Int).SetString(tc.hex, 16)
		if got := srpPad(x); !bytes.Equal(got, tc.want) {
			t.Errorf("srpPad(0x%s) = %x; want %x", tc.hex, got, tc.want)
		}
	}
	if got := srpPad(srpN); len(got) != 385 || got[0] != 0 {
		t.Errorf("srpPad(N) has %d bytes starting %x; want 385 starting 00", len(got), got[0])
	}
}

// TestSRPEdgeEncodings drives the client's key derivation into the cases
// that break a wrong encoding only once in 256 logins: a u and an S whose
// first byte is zero (hashed one byte shorter) and an A and a B whose
// top bit is set (hashed one byte longer). The server's side is computed
// here the textbook way, S = (A * v^u)^b, and must derive the same key.
func TestSRPEdgeEncodings(t *testing.T) {
	if testing.Short() {
		t.Skip("searches a few thousand exponentiations")
	}
	const pool, user, password = "Pool1", "user", "pässword"
	salt := new(big.Int).SetBytes([]byte{0x00, 0x9a, 0x01})
	x := new(big.Int).SetBytes(srpHash(srpPad(salt), srpHash([]byte(pool+user+":"+password))))
	v := new(big.Int).Exp(srpG, x, srpN)
	serverKey := func(A, b, B *big.Int) []byte {
		u := new(big.Int).SetBytes(srpHash(srpPad(A), srpPad(B)))
		S := new(big.Int).Exp(v, u, srpN)
		S.Mul(S, A).Mod(S, srpN).Exp(S, b, srpN)
		return cognitoHKDF(srpPad(S), srpPad(u))
	}
	// The server's b is short here, and each try steps a by one (A by a
	// factor g): the search then costs multiplications, not 3072-bit
	// exponentiations with 1024-bit exponents.
	var b, B *big.Int
	for B == nil || B.BitLen() != 3072 { // a B with its top bit set, half of them
		bb := make([]byte, 32)
		rand.Read(bb)
		b = new(big.Int).SetBytes(bb)
		B = new(big.Int).Exp(srpG, b, srpN)
		B.Add(B, new(big.Int).Mul(srpK, v)).Mod(B, srpN)
	}
	c, err := newSRPClient(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"u short": false, "S short": false, "A long": false, "B long": true}
	for i := 0; i < 5000 && !(want["u short"] && want["S short"] && want["A long"]); i++ {
		c.a.Add(c.a, big.NewInt(1))
		c.A.Mul(c.A, srpG).Mod(c.A, srpN)
		u := srpHash(srpPad(c.A), srpPad(B))
		cases := map[string]bool{"u short": u[0] == 0, "A long": c.A.BitLen() == 3072}
		if !want["S short"] {
			S := new(big.Int).Exp(v, new(big.Int).SetBytes(u), srpN)
			S.Mul(S, c.A).Mod(S, srpN).Exp(S, b, srpN)
			cases["S short"] = len(S.Bytes()) < 384
		}
		interesting := false
		for k, hit := range cases {
			if hit && !want[k] {
				want[k], interesting = true, true
			}
		}
		if !interesting {
			continue
		}
		got, err := c.passwordKey(pool, user, password, B, salt)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, serverKey(c.A, b, B)) {
			t.Fatalf("keys differ for %v", cases)
		}
		wrong, _ := c.passwordKey(pool, user, password+"!", B, salt)
		if bytes.Equal(wrong, got) {
			t.Fatal("a wrong password derives the same key")
		}
	}
	for k, hit := range want {
		if !hit {
			t.Errorf("no case with %s in 5000 tries", k)
		}
	}
}

// TestSRPUnsafeB: a B that is 0 mod N would make S known without the
// password; the client refuses it.
func TestSRPUnsafeB(t *testing.T) {
	c, err := newSRPClient(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, B := range []*big.Int{big.NewInt(0), srpN, new(big.Int).Mul(srpN, big.NewInt(2))} {
		if _, err := c.passwordKey("p", "u", "pw", B, big.NewInt(1)); err != errSRPParameters {
			t.Errorf("B = %v...: %v; want errSRPParameters", B.Text(16)[:1], err)
		}
	}
}
