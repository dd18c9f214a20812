// Package secret holds the string type tokencache uses for every credential
// it handles: client secrets, access tokens, refresh tokens, API keys.
//
// A Secret prints as "*****" through fmt, log/slog and %#v, so a config
// struct or an error that carries one can be logged without leaking it. The
// value is reached only on purpose, through Reveal. Even encoding/json masks
// it (slog's JSON handler marshals structs), so code that must persist a
// secret, such as storage.Record, encodes the revealed string itself.
//
// RedactURL is the one redaction of URLs in the module: store URLs, token
// endpoints, anything that goes into a log line or an error. It lives here,
// beside Secret, because users of every package and authors of storage
// adapters alike need it.
package secret

import (
	"encoding/json"
	"fmt"
	"log/slog"
)

// Mask is what a Secret prints as.
const Mask = "*****"

// Secret is a credential that must not leak into logs, errors or panics.
type Secret string

// Reveal returns the secret's value. Call it only to put the value on the wire.
func (s Secret) Reveal() string { return string(s) }

// IsZero reports whether no secret is set.
func (s Secret) IsZero() bool { return s == "" }

// String masks the value; an empty secret prints as "".
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return Mask
}

// GoString masks the value for %#v.
func (s Secret) GoString() string { return fmt.Sprintf("secret.Secret(%q)", s.String()) }

// Format masks the value for every verb, including %x and %q, which would
// otherwise bypass String.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprint(f, s.GoString())
		return
	}
	if verb == 'q' {
		fmt.Fprintf(f, "%q", s.String())
		return
	}
	fmt.Fprint(f, s.String())
}

// LogValue masks the value for log/slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON masks the value; see the package comment.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }
