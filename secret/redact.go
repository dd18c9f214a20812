package secret

import (
	"net/url"
	"strings"
)

// redactMask replaces each secret RedactURL finds.
const redactMask = Mask

// unparseable is what RedactURL returns, after the scheme, for text that is
// not a URL: without the structure there is no telling which part is the
// secret, so none of it is shown.
const unparseable = "<unparseable URL>"

// secretParams are the query parameter names, lower case, whose values
// RedactURL masks; see RedactURL for the list in prose.
var secretParams = map[string]bool{
	"password":                true,
	"passwd":                  true,
	"pwd":                     true,
	"secret":                  true,
	"client_secret":           true,
	"token":                   true,
	"access_token":            true,
	"refresh_token":           true,
	"id_token":                true,
	"api_key":                 true,
	"apikey":                  true,
	"key":                     true,
	"sig":                     true,
	"signature":               true,
	"x-amz-security-token":    true,
	"x-amz-signature":         true,
	"aws_session_token":       true,
	"authmechanismproperties": true,
}

// secretParam reports whether a query parameter of this (unescaped) name
// holds a secret.
func secretParam(name string) bool {
	n := strings.ToLower(name)
	if secretParams[n] {
		return true
	}
	// A name that ends in key_id names a key (kms_key_id, an AWS access
	// key id): it is needed to read the log and is no secret.
	if strings.HasSuffix(n, "key_id") {
		return false
	}
	for _, s := range []string{"password", "passwd", "secret", "token", "signature", "key"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// RedactURL returns rawURL fit for a log line or an error message: every
// secret in it replaced by "*****" and every other byte as it was. It is
// the one redaction for URLs in this module; anything that prints or logs
// a store URL, or puts one into an error, passes it through RedactURL.
//
// What it masks:
//
//   - the password of the user information (redis://app:*****@host);
//   - the value of every query parameter, and of every name=value pair in
//     the fragment (where an implicit grant's redirect carries its access
//     token), whose name, unescaped and compared without regard to case,
//     is one of password, passwd, pwd, secret, client_secret, token,
//     access_token, refresh_token, id_token, api_key, apikey, key, sig,
//     signature, X-Amz-Security-Token, X-Amz-Signature, aws_session_token
//     or authMechanismProperties (MongoDB's, which can hold
//     AWS_SESSION_TOKEN:...);
//   - as a net for vendors' variants, the value of every parameter whose
//     name contains password, passwd, secret, token, signature or key,
//     except a name ending in key_id (kms_key_id, an AWS access key id),
//     which names a key and is kept;
//   - the value of a parameter whose name has a malformed escape (%zz),
//     since its name cannot be told;
//   - the value of any parameter that is itself a URL with user
//     information, escaped or not (kms_endpoint=http://admin:pw@host);
//   - in a URL without "//" whose text has an '@' (redis:user:pw@host, a
//     missing "//"), everything between the scheme and the last '@'.
//
// Pairs are split at '&' and at ';', as some servers do, so a ';' cannot
// smuggle a value past its name.
//
// Text that does not parse as a URL (a malformed escape in the host or
// path, a control character) is never repeated: RedactURL returns its scheme,
// when it starts with a well-formed one, and "<unparseable URL>", as in
// "redis://<unparseable URL>".
//
// What it does not mask: a secret in the path or the host name, a bare
// query value without a name, or a user name used as a token
// (https://TOKEN@host). Secrets do not belong in those places.
func RedactURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return redactUnparseable(rawURL)
	}
	out, ok := redactParsed(rawURL, u)
	if !ok {
		return redactUnparseable(rawURL)
	}
	return out
}

// redactParsed masks the secrets of rawURL, which url.Parse parsed into
// u, in place in its text, so that nothing else is re-encoded. It finds
// the parts as url.Parse does: the fragment after the first '#', the query
// after the first '?', the user information before the last '@' of the
// authority. ok is false if the result does not check out, which would be
// a bug here; the caller then shows nothing.
func redactParsed(rawURL string, u *url.URL) (string, bool) {
	pre, frag, hasFrag := strings.Cut(rawURL, "#")
	pre, query, hasQuery := strings.Cut(pre, "?")
	rest := pre // after "scheme:"
	if u.Scheme != "" {
		if len(pre) <= len(u.Scheme) || pre[len(u.Scheme)] != ':' {
			return "", false
		}
		rest = pre[len(u.Scheme)+1:]
	}
	head := pre[:len(pre)-len(rest)]
	_, hasPassword := u.User.Password()
	switch {
	case hasPassword:
		if !strings.HasPrefix(rest, "//") {
			return "", false
		}
		auth, path := rest[2:], ""
		if i := strings.IndexByte(auth, '/'); i >= 0 {
			auth, path = auth[:i], auth[i:]
		}
		at := strings.LastIndexByte(auth, '@')
		if at < 0 {
			return "", false
		}
		user, _, ok := strings.Cut(auth[:at], ":")
		if !ok {
			return "", false
		}
		rest = "//" + user + ":" + redactMask + auth[at:] + path
	case u.Opaque != "":
		// "redis:user:pw@host" is opaque to url.Parse, but a reader (or a
		// lenient client) sees user information in it.
		if at := strings.LastIndexByte(rest, '@'); at >= 0 {
			rest = redactMask + rest[at:]
		}
	}
	var b strings.Builder
	b.Grow(len(rawURL))
	b.WriteString(head)
	b.WriteString(rest)
	if hasQuery {
		b.WriteByte('?')
		redactPairs(&b, query)
	}
	if hasFrag {
		b.WriteByte('#')
		redactPairs(&b, frag)
	}
	out := b.String()
	// Check the password went: what was found by hand must be what
	// url.Parse found.
	if hasPassword {
		v, err := url.Parse(out)
		if err != nil || v.User == nil || v.User.Username() != u.User.Username() {
			return "", false
		}
		if pw, _ := v.User.Password(); pw != redactMask {
			return "", false
		}
	}
	return out, true
}

// redactPairs writes s, a query or fragment, with the values of secret
// parameters masked.
func redactPairs(b *strings.Builder, s string) {
	for s != "" {
		pair := s
		sep := ""
		if i := strings.IndexAny(s, "&;"); i >= 0 {
			pair, sep, s = s[:i], s[i:i+1], s[i+1:]
		} else {
			s = ""
		}
		name, value, hasValue := strings.Cut(pair, "=")
		if hasValue {
			n, err := url.QueryUnescape(name)
			if err != nil || secretParam(n) || nestedCredentials(value) {
				pair = name + "=" + redactMask
			}
		}
		b.WriteString(pair)
		b.WriteString(sep)
	}
}

// nestedCredentials reports whether a query value is itself a URL with
// user info (kms_endpoint=http://admin:pw@host), plainly or escaped.
func nestedCredentials(value string) bool {
	v, err := url.QueryUnescape(value)
	if err != nil {
		v = value
	}
	if !strings.Contains(v, "://") || !strings.Contains(v, "@") {
		return false
	}
	u, err := url.Parse(v)
	return err != nil || u.User != nil
}

// redactUnparseable returns the scheme of text that is not a URL, if it
// starts with a well-formed one, and the placeholder.
func redactUnparseable(raw string) string {
	i := strings.IndexByte(raw, ':')
	if i <= 0 || !validScheme(raw[:i]) {
		return unparseable
	}
	sep := ":"
	if strings.HasPrefix(raw[i:], "://") {
		sep = "://"
	}
	return strings.ToLower(raw[:i]) + sep + unparseable
}

// validScheme reports whether s is an RFC 3986 scheme: a letter, then
// letters, digits, '+', '-' or '.'.
func validScheme(s string) bool {
	for i, c := range []byte(s) {
		switch {
		case 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return s != ""
}
