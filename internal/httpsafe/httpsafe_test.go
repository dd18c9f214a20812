package httpsafe

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

func TestNoRedirects(t *testing.T) {
	var followed bool
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { followed = true }))
	defer target.Close()
	src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusTemporaryRedirect)
	}))
	defer src.Close()
	orig := &http.Client{}
	c := NoRedirects(orig)
	resp, err := c.Post(src.URL, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if followed || resp.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("redirect followed: %v, status %d", followed, resp.StatusCode)
	}
	if orig.CheckRedirect != nil {
		t.Fatal("the caller's client was changed")
	}
}

func TestOrigins(t *testing.T) {
	parse := func(s string) *url.URL { u, _ := url.Parse(s); return u }
	first := NewOrigins(nil)
	if !first.Allows(parse("https://api.example/v1")) || !first.Allows(parse("https://API.example:443/other")) {
		t.Fatal("first origin not allowed")
	}
	for _, other := range []string{"http://api.example/v1", "https://api.example:8443/", "https://evil.example/"} {
		if first.Allows(parse(other)) {
			t.Errorf("%s allowed after https://api.example", other)
		}
	}
	fixed := NewOrigins([]string{"https://a.example", "http://127.0.0.1:8080/base"})
	if !fixed.Allows(parse("https://a.example/x")) || !fixed.Allows(parse("http://127.0.0.1:8080/y")) || fixed.Allows(parse("https://b.example/")) {
		t.Fatal("configured origins")
	}
}

func TestCleartextAndPrintable(t *testing.T) {
	for in, want := range map[string]bool{
		"http://idp.example/token": true, "https://idp.example/token": false,
		"http://127.0.0.1:9/token": false, "http://localhost/token": false, "http://[::1]:80/": false,
	} {
		if Cleartext(in) != want {
			t.Errorf("Cleartext(%q) = %v", in, !want)
		}
	}
	if got := Printable("bad\x1b[31m red\r\nline\ttab\u009b"); got != `bad\x1b[31m red\x0d\x0aline`+"\t"+`tab\x9b` {
		t.Errorf("Printable = %q", got)
	}
}
