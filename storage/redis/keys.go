package redis

import (
	"strings"
)

// key maps a profile name to its Redis key. Only '%', '{' and '}' are
// escaped: braces would otherwise form a Cluster hash tag and pin the
// profile to another name's slot, and '%' must be escaped for the mapping
// to be reversible. Everything else stays readable in redis-cli.
func (a *Adapter) key(name string) string {
	if !strings.ContainsAny(name, "%{}") {
		return a.prefix + name
	}
	var b strings.Builder
	b.Grow(len(a.prefix) + len(name) + 8)
	b.WriteString(a.prefix)
	for i := 0; i < len(name); i++ {
		switch c := name[i]; c {
		case '%':
			b.WriteString("%25")
		case '{':
			b.WriteString("%7B")
		case '}':
			b.WriteString("%7D")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// name is the inverse of key; ok is false for keys key cannot have made.
func (a *Adapter) name(key string) (string, bool) {
	s, ok := strings.CutPrefix(key, a.prefix)
	if !ok || s == "" || strings.ContainsAny(s, "{}") {
		return "", false
	}
	if !strings.Contains(s, "%") {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+3 > len(s) {
			return "", false
		}
		switch s[i+1 : i+3] {
		case "25":
			b.WriteByte('%')
		case "7B":
			b.WriteByte('{')
		case "7D":
			b.WriteByte('}')
		default:
			return "", false
		}
		i += 2
	}
	return b.String(), true
}

// globEscape quotes the characters SCAN MATCH treats as a pattern, so that
// a prefix such as "tc[1]:" matches only itself.
func globEscape(s string) string {
	if !strings.ContainsAny(s, `*?[]\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
