package file

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/tokencache/tokencache/storage/driver"
)

var parseSeeds = []string{
	"",
	" \n",
	`{}`,
	`{"profiles": {}}`,
	"{\n    \"profiles\": {}\n}",
	`{"_default": {}}`,
	`{"profiles": {"1": {"profile": "a"}, "2": {"profile": "b", "x": [1, {"y": "}"}]}}}`,
	`{"profiles": {"1": {"profile": "a"}, "x": {"profile": "a"}, "9": {"profile": null}}}`,
	`{"pro\u0066iles": {"1": {"pro\u0066ile": "\u00fc\"\\"}}}`,
	`{"profiles": {"1": {"profile": "a", "profile": "b"}}}`,
	"{\"profiles\":{\"1\":{\"profile\":\"a\"}},\"t\":[true,false,null,-1.5e3]}",
	`{"profiles": {"1": {"profile": "p",}}}`,
	`{"profiles": []}`,
	`{"profiles": {"1": 5}}`,
	`{"profiles": {"1": {}, "1": {}}}`,
	`{"profiles": {}, "profiles": {}}`,
	`[]`,
	`{"a":1} {"b":2}`,
	"\xef\xbb\xbf{}",
	// Found by fuzzing: a profile name that is not UTF-8 must read the
	// same (as U+FFFD) on the fast path and through encoding/json.
	"{\"profiles\":{\"\":{\"profile\":\"\xc1\"}}}",
}

// FuzzParse checks the credentials file parser: no panics, every error is
// ErrCorrupt, and on every file it accepts, a write of one profile leaves a
// file that parses, holds the new value and every other profile unchanged.
func FuzzParse(f *testing.F) {
	for _, s := range parseSeeds {
		f.Add([]byte(s))
	}
	if b, err := os.ReadFile("testdata/pancloud.json"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkParse(t, data)
	})
}

func checkParse(t *testing.T, data []byte) {
	p, err := parse("f.json", data)
	if err != nil {
		if !errors.Is(err, driver.ErrCorrupt) {
			t.Fatalf("error %v does not match ErrCorrupt", err)
		}
		if json.Valid(data) && p != nil {
			t.Fatal("parsed and failed")
		}
		return
	}
	before := values(t, p)
	for _, name := range append(p.profilesList(), "new profile", "") {
		value, err := normalize(name, []byte(`{"n": [1, "two"], "profile": "ignored"}`))
		if err != nil {
			t.Fatal(err)
		}
		out := p.withPut(name, value)
		q, err := parse("f.json", out)
		if err != nil {
			t.Fatalf("after writing %q: %v\n%s\nwas\n%s", name, err, out, data)
		}
		after := values(t, q)
		got, _, ok := q.get(name)
		if !ok || !bytes.Equal(got, value) {
			t.Fatalf("wrote %q as %s, read back %s (%v)\n%s", name, value, got, ok, out)
		}
		for k, v := range before {
			if k != name && after[k] != v {
				t.Fatalf("writing %q changed %q from %s to %s\n%s", name, k, v, after[k], out)
			}
		}
		if len(after) != len(before) && !(len(after) == len(before)+1 && before[name] == "") {
			t.Fatalf("writing %q: %d profiles, was %d", name, len(after), len(before))
		}
		if i, ok := q.byProfile[name]; ok {
			r, err := parse("f.json", q.withDelete(i))
			if err != nil {
				t.Fatalf("after deleting %q: %v", name, err)
			}
			for k, v := range values(t, r) {
				if k != name && after[k] != v {
					t.Fatalf("deleting %q changed %q", name, k)
				}
			}
		}
	}
}

func values(t *testing.T, p *parsed) map[string]string {
	m := map[string]string{}
	for _, k := range p.profilesList() {
		v, rev, ok := p.get(k)
		if !ok || rev == "" || !json.Valid(v) {
			t.Fatalf("profile %q listed but get = %s, %q, %v", k, v, rev, ok)
		}
		m[k] = string(v)
	}
	return m
}

func TestParseSeeds(t *testing.T) {
	for _, s := range parseSeeds {
		checkParse(t, []byte(s))
	}
}
