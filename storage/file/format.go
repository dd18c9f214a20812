package file

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/tokencache/tokencache/storage/driver"
)

// The file is TinyDB's JSON layout, which pancloud uses:
//
//	{"profiles": {"1": {"profile": "default", "client_id": ...}, "2": {...}}}
//
// Top-level members are tables; "profiles" is ours, the others belong to
// someone else. A table maps a document id (a decimal string) to a document.
// A profile's document is the first one whose "profile" member is the
// profile name.
//
// Writes splice the new text into the old file instead of re-encoding it:
// other tables, other documents and their formatting stay byte-for-byte as
// they were, so a file that pancloud (or a person) wrote stays recognisable
// and diffable, and members we do not understand cannot be lost.

const table = "profiles"

// member is one "name": value pair of an object, by byte offsets.
type member struct {
	name     string
	keyStart int // the key's opening quote
	keyEnd   int // just after the key's closing quote
	valStart int
	valEnd   int
}

type object struct {
	open, close int // offsets of '{' and '}'
	members     []member
}

// doc is one document of the profiles table.
type doc struct {
	member
	profile    string
	hasProfile bool

	// The value Get returns and its revision are computed on first use:
	// most Gets want one profile of a file that holds several.
	once  sync.Once
	value []byte
	rev   driver.Revision
}

// parsed is the structure of one version of the file's bytes.
type parsed struct {
	data      []byte
	top       *object // nil when the file is empty
	profiles  *object // nil when there is no profiles table
	tableIdx  int     // index of the profiles member in top.members
	docs      []*doc
	byProfile map[string]int // profile -> index of its first doc
	maxID     int64
}

// corruptError builds the error for an undecodable file: it names the file
// and the byte offset so that an operator can find and repair the spot.
func corruptError(path string, offset int64, msg string) error {
	return driver.Wrap(driver.ErrCorrupt, fmt.Sprintf("file: %s: byte offset %d: %s (the file is left as is; repair or remove it)", path, offset, msg), nil)
}

// noopUnmarshal lets json.Unmarshal run its validating scan, which reports
// the offset of the first syntax error, without building any values.
type noopUnmarshal struct{}

func (*noopUnmarshal) UnmarshalJSON([]byte) error { return nil }

// parse reads the structure of a credentials file. An empty or blank file
// is an empty store: TinyDB creates the file empty before its first write.
// Errors match driver.ErrCorrupt.
func parse(path string, data []byte) (*parsed, error) {
	p := &parsed{data: data, tableIdx: -1, byProfile: map[string]int{}}
	s := scanner{b: data}
	s.ws()
	if s.i == len(data) {
		return p, nil
	}
	if err := json.Unmarshal(data, new(noopUnmarshal)); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, corruptError(path, se.Offset, "invalid JSON: "+se.Error())
		}
		return nil, corruptError(path, 0, "invalid JSON: "+err.Error())
	}
	// From here on the input is known to be valid JSON, which keeps the
	// scanner small: it only has to find boundaries, not check them.
	top, err := s.object(path, "the top level")
	if err != nil {
		return nil, err
	}
	p.top = top
	for i, m := range top.members {
		if m.name != table {
			continue
		}
		if p.profiles != nil {
			return nil, corruptError(path, int64(m.keyStart), fmt.Sprintf("table %q appears twice", table))
		}
		s.i = m.valStart
		if p.profiles, err = s.object(path, fmt.Sprintf("table %q", table)); err != nil {
			return nil, err
		}
		p.tableIdx = i
	}
	if p.profiles == nil {
		return p, nil
	}
	ids := make(map[string]struct{}, len(p.profiles.members))
	for _, m := range p.profiles.members {
		if _, dup := ids[m.name]; dup {
			return nil, corruptError(path, int64(m.keyStart), fmt.Sprintf("document id %q appears twice", m.name))
		}
		ids[m.name] = struct{}{}
		// TinyDB ids are integers; others are kept but cannot collide
		// with the ids we hand out.
		if id, err := strconv.ParseInt(m.name, 10, 64); err == nil && id > p.maxID {
			p.maxID = id
		}
		s.i = m.valStart
		o, err := s.object(path, fmt.Sprintf("document %q", m.name))
		if err != nil {
			return nil, err
		}
		d := &doc{member: m}
		for _, f := range o.members {
			if f.name != "profile" {
				continue
			}
			// A later duplicate wins, as in Python's json module.
			d.hasProfile = false
			if data[f.valStart] == '"' {
				if name, err := unquote(data[f.valStart:f.valEnd]); err == nil {
					d.profile, d.hasProfile = name, true
				}
			}
		}
		if d.hasProfile {
			if _, seen := p.byProfile[d.profile]; !seen {
				p.byProfile[d.profile] = len(p.docs)
			}
		}
		p.docs = append(p.docs, d)
	}
	return p, nil
}

// get returns the compact value and revision of the profile's document.
func (p *parsed) get(profile string) ([]byte, driver.Revision, bool) {
	i, ok := p.byProfile[profile]
	if !ok {
		return nil, "", false
	}
	d := p.docs[i]
	d.once.Do(func() {
		var buf bytes.Buffer
		buf.Grow(d.valEnd - d.valStart)
		// Valid JSON always compacts.
		_ = json.Compact(&buf, p.data[d.valStart:d.valEnd])
		d.value = buf.Bytes()
		d.rev = revisionOf(d.value)
	})
	return d.value, d.rev, true
}

// revisionOf derives a revision from a document's compact bytes. Content
// addressing is what makes revisions work with writers that know nothing of
// them: pancloud updates the file without any revision bookkeeping, and its
// change still changes the revision. A conditional Put therefore succeeds
// only when the document is exactly what the writer read; a document that
// changed and changed back (A -> B -> A) matches again, which is harmless
// here because the value is all the adapter exposes: the writer decided on
// precisely the current content, so its write is the same as one made right
// after a fresh read. SHA-256 truncated to 128 bits makes an accidental (or
// crafted) collision out of the question. Hashing the compact form keeps a
// whitespace-only reformat by another tool from looking like a change.
func revisionOf(compact []byte) driver.Revision {
	sum := sha256.Sum256(compact)
	return driver.Revision(base64.RawURLEncoding.EncodeToString(sum[:16]))
}

func (p *parsed) profilesList() []string {
	keys := make([]string, 0, len(p.byProfile))
	for k := range p.byProfile {
		keys = append(keys, k)
	}
	return keys
}

// layout is how an object's members are laid out in the existing text, so
// that new members look like their neighbours.
type layout struct {
	lead   string // between the previous ',' or '{' and a key
	colon  string // between a key and its value: ":" or ": "
	indent string // the member's line indentation, when pretty-printed
	unit   string // one level of indentation
	pretty bool
}

// lineIndent returns the blanks between the last newline before off and off,
// and whether only blanks are there (the text at off starts a line).
func lineIndent(data []byte, off int) (string, bool) {
	i := off
	for i > 0 && (data[i-1] == ' ' || data[i-1] == '\t') {
		i--
	}
	if i == 0 || data[i-1] != '\n' {
		return "", false
	}
	return string(data[i:off]), true
}

// layoutOf guesses the layout of obj's members. outer is the indentation of
// the line that holds obj's own key, for objects with no members yet.
func layoutOf(data []byte, obj *object, outerIndent string, outerPretty bool) layout {
	if n := len(obj.members); n > 0 {
		last := obj.members[n-1]
		prevEnd := obj.open + 1
		if n > 1 {
			prevEnd = obj.members[n-2].valEnd
			// Skip the comma that follows the previous value.
			for prevEnd < last.keyStart && data[prevEnd] != ',' {
				prevEnd++
			}
			prevEnd++
		}
		l := layout{
			lead:  string(data[min(prevEnd, last.keyStart):last.keyStart]),
			colon: string(data[last.keyEnd:last.valStart]),
		}
		if n == 1 && !bytes.Contains([]byte(l.lead), []byte("\n")) {
			// One member on one line shows no separator to copy; use
			// Python's default, which TinyDB writes.
			l.lead = " "
		}
		l.indent, l.pretty = lineIndent(data, last.keyStart)
		l.unit = "    "
		if l.pretty && len(l.indent) > len(outerIndent) && l.indent[:len(outerIndent)] == outerIndent {
			l.unit = l.indent[len(outerIndent):]
		}
		return l
	}
	if !outerPretty {
		return layout{colon: ": "}
	}
	unit := "    "
	if outerIndent != "" {
		// The outer key sits one level in, so its indentation is one unit
		// (for the common case of a top-level table).
		unit = outerIndent
	}
	ind := outerIndent + unit
	return layout{lead: "\n" + ind, colon: ": ", indent: ind, unit: unit, pretty: true}
}

// format renders a compact JSON value for a member laid out as l.
func (l layout) format(value []byte) []byte {
	if !l.pretty {
		return value
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, value, l.indent, l.unit); err != nil {
		return value
	}
	return buf.Bytes()
}

// insertMember returns data with the member name: value added at the end of
// obj. value is compact JSON; it is indented to match the neighbours.
func insertMember(data []byte, obj *object, l layout, name string, value []byte) []byte {
	key, _ := json.Marshal(name)
	var mid bytes.Buffer
	at := obj.open + 1
	if n := len(obj.members); n > 0 {
		at = obj.members[n-1].valEnd
		mid.WriteByte(',')
	}
	mid.WriteString(l.lead)
	mid.Write(key)
	mid.WriteString(l.colon)
	mid.Write(l.format(value))
	tail := data[at:]
	if len(obj.members) == 0 {
		// An empty object's inside is blank; replace it so the closing
		// brace lands on its own line when pretty-printed.
		tail = data[obj.close:]
		if l.pretty {
			mid.WriteString("\n" + l.indent[:len(l.indent)-len(l.unit)])
		}
	}
	out := make([]byte, 0, len(data)+mid.Len())
	out = append(out, data[:at]...)
	out = append(out, mid.Bytes()...)
	return append(out, tail...)
}

// removeMember returns data without obj.members[i], its comma and the blank
// that introduced it.
func removeMember(data []byte, obj *object, i int) []byte {
	var from, to int
	switch n := len(obj.members); {
	case n == 1:
		from, to = obj.open+1, obj.close
	case i < n-1:
		from, to = obj.members[i].keyStart, obj.members[i+1].keyStart
	default:
		from, to = obj.members[i-1].valEnd, obj.members[i].valEnd
	}
	out := make([]byte, 0, len(data)-(to-from))
	out = append(out, data[:from]...)
	return append(out, data[to:]...)
}

// replace returns data with [from, to) replaced by repl.
func replace(data []byte, from, to int, repl []byte) []byte {
	out := make([]byte, 0, len(data)-(to-from)+len(repl))
	out = append(out, data[:from]...)
	out = append(out, repl...)
	return append(out, data[to:]...)
}

// fresh is a new file holding one document, in pancloud's layout.
func fresh(value []byte) []byte {
	var buf bytes.Buffer
	buf.WriteString("{\n    \"profiles\": {\n        \"1\": ")
	l := layout{indent: "        ", unit: "    ", pretty: true}
	buf.Write(l.format(value))
	buf.WriteString("\n    }\n}\n")
	return buf.Bytes()
}

// withPut returns the file's bytes with the profile's document set to value
// (compact JSON whose "profile" member is already the profile name).
func (p *parsed) withPut(profile string, value []byte) []byte {
	if p.top == nil {
		return fresh(value)
	}
	if i, ok := p.byProfile[profile]; ok {
		d := p.docs[i]
		var l layout
		if l.indent, l.pretty = lineIndent(p.data, d.keyStart); l.pretty {
			l.unit = "    "
			if t := p.tableIndent(); len(l.indent) > len(t) && l.indent[:len(t)] == t {
				l.unit = l.indent[len(t):]
			}
		}
		return replace(p.data, d.valStart, d.valEnd, l.format(value))
	}
	id := strconv.FormatInt(p.maxID+1, 10)
	if p.profiles == nil {
		l := layoutOf(p.data, p.top, "", hasNewline(p.data))
		return insertMember(p.data, p.top, l, table, fmt.Appendf(nil, `{%q:%s}`, id, value))
	}
	t := p.tableIndent()
	_, tableOnOwnLine := lineIndent(p.data, p.top.members[p.tableIdx].keyStart)
	l := layoutOf(p.data, p.profiles, t, tableOnOwnLine)
	return insertMember(p.data, p.profiles, l, id, value)
}

func (p *parsed) tableIndent() string {
	ind, _ := lineIndent(p.data, p.top.members[p.tableIdx].keyStart)
	return ind
}

// withDelete returns the file's bytes without the document at index i.
func (p *parsed) withDelete(i int) []byte {
	return removeMember(p.data, p.profiles, i)
}

func hasNewline(b []byte) bool { return bytes.IndexByte(b, '\n') >= 0 }

// scanner walks JSON that is already known to be valid.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\r', '\n':
			s.i++
		default:
			return
		}
	}
}

// object reads the object at s.i, recording its members.
func (s *scanner) object(path, what string) (*object, error) {
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return nil, corruptError(path, int64(s.i), what+" is not a JSON object")
	}
	o := &object{open: s.i}
	s.i++
	for {
		s.ws()
		switch s.b[s.i] {
		case '}':
			o.close = s.i
			s.i++
			return o, nil
		case ',':
			s.i++
			s.ws()
		}
		m := member{keyStart: s.i}
		s.skipString()
		m.keyEnd = s.i
		name, err := unquote(s.b[m.keyStart:m.keyEnd])
		if err != nil {
			return nil, corruptError(path, int64(m.keyStart), "bad member name")
		}
		m.name = name
		s.ws()
		s.i++ // ':'
		s.ws()
		m.valStart = s.i
		s.skipValue()
		m.valEnd = s.i
		o.members = append(o.members, m)
	}
}

func (s *scanner) skipString() {
	s.i++ // opening quote
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case '\\':
			s.i += 2
		case '"':
			s.i++
			return
		default:
			s.i++
		}
	}
}

// skipValue skips one value. Containers are skipped by counting brackets
// rather than by recursion, so deep nesting costs no stack.
func (s *scanner) skipValue() {
	switch s.b[s.i] {
	case '"':
		s.skipString()
	case '{', '[':
		depth := 0
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case '"':
				s.skipString()
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					s.i++
					return
				}
			}
			s.i++
		}
	default: // a number or a literal
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case ',', '}', ']', ' ', '\t', '\r', '\n':
				return
			}
			s.i++
		}
	}
}

func unquote(b []byte) (string, error) {
	// The fast path must agree with encoding/json, which turns invalid
	// UTF-8 into U+FFFD: a name must read the same whichever way it is read.
	if len(b) >= 2 && bytes.IndexByte(b, '\\') < 0 && utf8.Valid(b) {
		return string(b[1 : len(b)-1]), nil
	}
	var s string
	err := json.Unmarshal(b, &s)
	return s, err
}

// normalize returns value as compact JSON whose "profile" member is key,
// keeping the other members in their order. Errors match driver.ErrInvalid.
func normalize(key string, value []byte) ([]byte, error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, value); err != nil {
		return nil, driver.Wrap(driver.ErrInvalid, "file: value is not JSON", nil)
	}
	c := buf.Bytes()
	if len(c) == 0 || c[0] != '{' {
		return nil, driver.Wrap(driver.ErrInvalid, "file: value is not a JSON object", nil)
	}
	s := scanner{b: c}
	o, err := s.object("", "value")
	if err != nil {
		return nil, driver.Wrap(driver.ErrInvalid, "file: value is not a JSON object", nil)
	}
	want, _ := json.Marshal(key)
	var profiles []member
	for _, m := range o.members {
		if m.name == "profile" {
			profiles = append(profiles, m)
		}
	}
	if len(profiles) == 1 && bytes.Equal(c[profiles[0].valStart:profiles[0].valEnd], want) {
		return c, nil // the common case: Store always writes the key
	}
	// Rebuild: drop every "profile" member, then put the key first.
	out := make([]byte, 0, len(c)+len(want)+12)
	out = append(out, `{"profile":`...)
	out = append(out, want...)
	for _, m := range o.members {
		if m.name == "profile" {
			continue
		}
		out = append(out, ',')
		out = append(out, c[m.keyStart:m.valEnd]...)
	}
	return append(out, '}'), nil
}
