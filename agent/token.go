package agent

import (
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/tokencache/tokencache/credentials"
)

// bufPool holds response buffers: a token response is built without
// encoding/json's reflection, which matters at tens of thousands of
// requests a second.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// writeToken answers with the token as JSON: access_token, token_type,
// expires_in (whole seconds from now) and expiry (RFC 3339), the last two
// only when the expiry is known. Nothing else of the profile is in it.
func writeToken(w http.ResponseWriter, tok *credentials.Token) int {
	bp := bufPool.Get().(*[]byte)
	b := (*bp)[:0]
	b = append(b, `{"access_token":`...)
	b = appendJSONString(b, tok.AccessToken.Reveal())
	b = append(b, `,"token_type":`...)
	typ := tok.TokenType
	if typ == "" {
		typ = "Bearer"
	}
	b = appendJSONString(b, typ)
	if !tok.Expiry.IsZero() {
		exp := tok.Expiry.UTC()
		b = append(b, `,"expires_in":`...)
		b = strconv.AppendInt(b, int64(time.Until(exp)/time.Second), 10)
		b = append(b, `,"expiry":"`...)
		b = exp.AppendFormat(b, time.RFC3339)
		b = append(b, '"')
	}
	b = append(b, "}\n"...)
	hdr := w.Header()
	hdr["Content-Type"] = hdrJSON
	w.WriteHeader(http.StatusOK)
	w.Write(b)
	*bp = b
	bufPool.Put(bp)
	return http.StatusOK
}

// appendJSONString appends s as a JSON string. Tokens are almost always
// plain ASCII, which is copied as is.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < 0x80 && c != '<' && c != '>' && c != '&' {
			i++
			continue
		}
		if c >= 0x80 {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError && r != '\u2028' && r != '\u2029' {
				i += size
				continue
			}
			b = append(b, s[start:i]...)
			if r == utf8.RuneError {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, `\u202`...)
				b = append(b, hex[r&0xf])
			}
			i += size
			start = i
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
