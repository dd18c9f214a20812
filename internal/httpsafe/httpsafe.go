// Package httpsafe keeps credentials on the origins they were meant for:
// token requests that never follow redirects, and a guard that tells an
// authorizing Transport which origins may receive a token.
package httpsafe

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// NoRedirects returns a copy of c (nil: a client with no timeout of its own)
// that does not follow redirects: the 3xx response itself comes back, for
// the caller to report. A token endpoint that redirects would otherwise get
// the refresh token and client secret sent again to wherever it points, and
// what that place answers would be stored as our tokens.
func NoRedirects(c *http.Client) *http.Client {
	var cp http.Client
	if c != nil {
		cp = *c
	}
	cp.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &cp
}

// Origin returns u's origin, scheme://host:port with the default port made
// explicit, lower-cased: the unit a credential is scoped to.
func Origin(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if port == "" {
		switch scheme {
		case "https":
			port = "443"
		case "http":
			port = "80"
		}
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// Origins decides which origins a Transport authorizes requests to: those
// configured, or, when none are, the origin of the first request it sends.
// A redirect (or a link a client follows) to any other origin goes without
// the token.
type Origins struct {
	once  sync.Once
	fixed map[string]bool
	mu    sync.Mutex
	first string
}

// NewOrigins returns Origins for the given URLs or origins; an entry that
// does not parse as a URL is ignored.
func NewOrigins(allowed []string) *Origins {
	o := &Origins{}
	o.init(allowed)
	return o
}

func (o *Origins) init(allowed []string) {
	o.once.Do(func() {
		for _, a := range allowed {
			if u, err := url.Parse(a); err == nil && u.Host != "" {
				if o.fixed == nil {
					o.fixed = map[string]bool{}
				}
				o.fixed[Origin(u)] = true
			}
		}
	})
}

// Allows reports whether a request to u may carry the credential.
func (o *Origins) Allows(u *url.URL) bool {
	o.init(nil)
	origin := Origin(u)
	if o.fixed != nil {
		return o.fixed[origin]
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.first == "" {
		o.first = origin
	}
	return o.first == origin
}

// Loopback reports whether host names this machine.
func Loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Cleartext reports whether rawURL sends credentials unencrypted to another
// machine: plain http to a host that is not loopback.
func Cleartext(rawURL string) bool {
	u, err := url.Parse(rawURL)
	return err == nil && strings.EqualFold(u.Scheme, "http") && !Loopback(u.Hostname())
}

// Printable escapes control characters (C0 but tab, DEL, C1) in a string a
// server or a store provided, so that printing it cannot move the cursor,
// recolour the terminal or rewrite earlier lines.
func Printable(s string) string {
	clean := true
	for _, r := range s {
		if isControl(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if isControl(r) {
			if r < 0x100 {
				fmt.Fprintf(&b, `\x%02x`, r)
			} else {
				fmt.Fprintf(&b, `\u%04x`, r)
			}
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func isControl(r rune) bool {
	return (r < 0x20 && r != '\t') || r == 0x7f || (r >= 0x80 && r < 0xa0)
}
