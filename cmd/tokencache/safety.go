package main

import (
	"bytes"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/tokencache/tokencache/internal/httpsafe"
	"github.com/tokencache/tokencache/secret"
)

// jsonSafe writes JSON to a terminal: encoding/json escapes C0 controls
// but leaves DEL and the C1 controls raw, which some terminals obey. The
// \u escapes written instead decode to the same strings.
type jsonSafe struct{ w io.Writer }

func (j jsonSafe) Write(p []byte) (int, error) {
	if !bytes.ContainsFunc(p, func(r rune) bool { return r >= 0x7f && r <= 0x9f }) {
		return j.w.Write(p)
	}
	var b bytes.Buffer
	for _, r := range string(p) {
		if r >= 0x7f && r <= 0x9f {
			fmt.Fprintf(&b, `\u%04x`, r)
		} else {
			b.WriteRune(r)
		}
	}
	if _, err := j.w.Write(b.Bytes()); err != nil {
		return 0, err
	}
	return len(p), nil
}

// displayURL is how every endpoint URL is printed: redacted (userinfo
// password and secret-bearing query parameters masked, see secret.RedactURL)
// and with control characters escaped (httpsafe.Printable, as the library
// escapes what servers say).
func displayURL(raw string) string {
	if raw == "" {
		return ""
	}
	return httpsafe.Printable(secret.RedactURL(raw))
}

// checkEndpointURL accepts an absolute http or https URL with a host. The
// message never quotes the URL, which may carry a password or a secret
// parameter (and url.Parse's own errors quote it in full).
func checkEndpointURL(flag, raw string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return usagef("%s: not a valid URL (a stray %% escape, space or control character?)", flag)
	case u.Scheme == "":
		return usagef("%s: not an absolute URL: give http://host/path or https://host/path", flag)
	case u.Scheme != "http" && u.Scheme != "https":
		return usagef("%s: scheme %q is not http or https", flag, u.Scheme)
	case u.Host == "" || u.Hostname() == "":
		return usagef("%s: the URL has no host", flag)
	}
	return nil
}

// plainHTTPWarning says why an http:// endpoint on another machine is a
// risk, or returns "" for https and loopback ones (tests, local proxies).
// what is the endpoint's name and exposed what crosses the network.
func plainHTTPWarning(what, exposed, raw string) string {
	if !httpsafe.Cleartext(raw) {
		return ""
	}
	return fmt.Sprintf("warning: %s %s is plain http to a host that is not loopback: %s would travel in clear; use https",
		what, displayURL(raw), exposed)
}

// readSecretFile reads one secret from a file, or from stdin for "-": the
// whole content less one trailing newline, so that "echo $S > f" and a
// here-string work. Its errors never quote the content.
func (a *app) readSecretFile(flag, path string) (secret.Secret, error) {
	var r io.Reader = a.stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return "", usagef("%s: %v", flag, err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, 1<<16+1))
	switch {
	case err != nil:
		return "", usagef("%s %s: %v", flag, path, err)
	case len(b) > 1<<16:
		return "", usagef("%s %s: more than 64 KiB, not a secret", flag, path)
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if s == "" {
		return "", usagef("%s %s: empty", flag, path)
	}
	if strings.ContainsAny(s, "\r\n") {
		return "", usagef("%s %s: more than one line", flag, path)
	}
	return secret.Secret(s), nil
}

// openerEnv is the environment of the browser opener: what a desktop
// session needs to show a page, and nothing else. The opener is another
// program (xdg-open and whatever browser it picks, or TOKENCACHE_BROWSER)
// that has no business with PAN_CLIENT_SECRET, refresh tokens or store
// URLs with passwords in them (TOKENCACHE_STORE), all of which the CLI's
// own environment may hold.
func openerEnv(environ []string) []string {
	keep := map[string]bool{
		"PATH": true, "HOME": true, "USER": true, "LOGNAME": true, "SHELL": true, "TMPDIR": true,
		"DISPLAY": true, "WAYLAND_DISPLAY": true, "XAUTHORITY": true, "DBUS_SESSION_BUS_ADDRESS": true,
		"BROWSER": true, "LANG": true, "LANGUAGE": true,
		// What Windows programs need to start at all.
		"SYSTEMROOT": true, "WINDIR": true, "COMSPEC": true, "PATHEXT": true, "USERPROFILE": true,
		"APPDATA": true, "LOCALAPPDATA": true, "TEMP": true, "TMP": true,
	}
	var out []string
	for _, kv := range environ {
		name, _, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		up := strings.ToUpper(name)
		if keep[up] || strings.HasPrefix(up, "XDG_") || strings.HasPrefix(up, "LC_") {
			out = append(out, kv)
		}
	}
	return out
}
