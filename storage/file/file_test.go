package file_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tokencache/tokencache/internal/dirwatch/dirwatchtest"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/driver/drivertest"
	"github.com/tokencache/tokencache/storage/file"
)

func TestConformance(t *testing.T) {
	// Every connection is its own Adapter on the same path, as separate
	// processes would be.
	path := filepath.Join(t.TempDir(), "conf", "credentials.json")
	drivertest.Run(t, func(t *testing.T) driver.Adapter { return newAdapter(t, path, nil) })
}

func TestProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "credentials.json")
	drivertest.RunProcesses(t, "file://"+path, 4, 200)
}

func BenchmarkStore(b *testing.B) {
	path := filepath.Join(b.TempDir(), "credentials.json")
	drivertest.Benchmark(b, func(b *testing.B) driver.Adapter { return newAdapter(b, path, nil) })
}

func copyFixture(t *testing.T, dst string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/pancloud.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

// docText returns the text of document id in a pancloud-style file.
func docText(t *testing.T, b []byte, id string) string {
	t.Helper()
	re := regexp.MustCompile(`(?s)"` + id + `": (\{.*?\n        \})`)
	m := re.FindSubmatch(b)
	if m == nil {
		t.Fatalf("document %s not found in\n%s", id, b)
	}
	return string(m[1])
}

// TestPancloudCompat reads a file as pancloud writes it (TinyDB, indent 4,
// sorted keys, another table, unknown members), updates one profile and
// checks that everything else is unchanged, byte for byte.
func TestPancloudCompat(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "credentials.json")
	orig := copyFixture(t, path)
	st := storage.NewStore(newAdapter(t, path, nil))
	defer st.Close()

	r, _, err := st.Load(ctx, "beta")
	if err != nil {
		t.Fatal(err)
	}
	if r.ClientID != "cid-beta" || r.RefreshToken.Reveal() != "rt-beta" || r.AccessToken.Reveal() != "at-beta" {
		t.Fatalf("beta read as %+v", r)
	}
	if names, _ := st.List(ctx); len(names) != 2 {
		t.Fatalf("List = %q", names)
	}

	_, _, err = st.Update(ctx, "alpha", func(r *storage.Record) error {
		r.AccessToken = secret.Secret("at-alpha-2")
		r.Rotate("rt-alpha-2")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := docText(t, got, "2"), docText(t, orig, "2"); a != b {
		t.Fatalf("profile beta changed:\n%s\nwas\n%s", a, b)
	}
	if !bytes.HasPrefix(got, []byte("{\n    \"_default\": {},\n    \"profiles\": {\n        \"1\": {\n            \"")) {
		t.Fatalf("layout around the updated document changed:\n%s", got)
	}
	var f struct {
		Default  map[string]any            `json:"_default"`
		Profiles map[string]map[string]any `json:"profiles"`
	}
	if err := json.Unmarshal(got, &f); err != nil {
		t.Fatal(err)
	}
	if f.Default == nil || len(f.Profiles) != 2 {
		t.Fatalf("tables changed: %s", got)
	}
	alpha := f.Profiles["1"]
	if alpha["profile"] != "alpha" || alpha["access_token"] != "at-alpha-2" || alpha["refresh_token"] != "rt-alpha-2" || alpha["client_secret"] != "cs-alpha" {
		t.Fatalf("alpha = %v", alpha)
	}
	if keep, _ := json.Marshal(alpha["x_custom"]); string(keep) != `{"keep":[1,2.5,"three"]}` {
		t.Fatalf("unknown member became %s", keep)
	}

	// A new profile gets the largest id plus one, in the same layout.
	if _, _, err := st.Update(ctx, "gamma", func(r *storage.Record) error { r.ClientID = "cid-gamma"; return nil }); err != nil {
		t.Fatal(err)
	}
	got, _ = os.ReadFile(path)
	if !strings.Contains(string(got), "\n        },\n        \"3\": {\n            \"schema_version\": 1,\n            \"profile\": \"gamma\",") {
		t.Fatalf("new document not laid out like its neighbours:\n%s", got)
	}
	if err := st.Delete(ctx, "alpha"); err != nil {
		t.Fatal(err)
	}
	got, _ = os.ReadFile(path)
	if a, b := docText(t, got, "2"), docText(t, orig, "2"); a != b {
		t.Fatalf("profile beta changed by a delete:\n%s", a)
	}
	if strings.Contains(string(got), `"1"`) {
		t.Fatalf("alpha not deleted:\n%s", got)
	}
	if err := json.Unmarshal(got, new(any)); err != nil {
		t.Fatalf("file no longer JSON: %v\n%s", err, got)
	}
}

// TestTinyDBCompact covers TinyDB's default, unindented layout, and a
// profile being written by another tool in place between our reads.
func TestTinyDBCompact(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db.json")
	const before = `{"profiles": {"7": {"profile": "p", "access_token": "aaaa"}}, "other": {"1": {"x": 1}}}`
	os.WriteFile(path, []byte(before), 0o600)
	a := newAdapter(t, path, nil)
	defer a.Close()
	v, rev, err := a.Get(ctx, "p")
	if err != nil || string(v) != `{"profile":"p","access_token":"aaaa"}` {
		t.Fatalf("Get = %s, %v", v, err)
	}
	fi, _ := os.Stat(path)

	// Same size, same mtime: only the content tells.
	inPlace := strings.Replace(before, "aaaa", "bbbb", 1)
	if err := os.WriteFile(path, []byte(inPlace), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(path, fi.ModTime(), fi.ModTime())
	v, rev2, err := a.Get(ctx, "p")
	if err != nil || !strings.Contains(string(v), "bbbb") || rev2 == rev {
		t.Fatalf("in-place change not seen: %s, %q, %v", v, rev2, err)
	}
	if _, err := a.Put(ctx, "p", []byte(`{"n":1}`), driver.IfMatch(rev)); !errors.Is(err, driver.ErrConflict) {
		t.Fatalf("Put on the revision before the in-place change: %v", err)
	}
	if _, err := a.Put(ctx, "q", []byte(`{"profile":"wrong","n":2}`), driver.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	want := `{"profiles": {"7": {"profile": "p", "access_token": "bbbb"}, "8": {"profile":"q","n":2}}, "other": {"1": {"x": 1}}}`
	if string(got) != want {
		t.Fatalf("file is\n%s\nwant\n%s", got, want)
	}
}

func TestNewFileLayoutAndPermissions(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "a", "pancloud")
	path := filepath.Join(dir, "credentials.json")
	a := newAdapter(t, path, nil)
	defer a.Close()
	if _, err := a.Put(ctx, "default", []byte(`{"access_token":"x"}`), driver.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	want := "{\n    \"profiles\": {\n        \"1\": {\n            \"profile\": \"default\",\n            \"access_token\": \"x\"\n        }\n    }\n}\n"
	if string(got) != want {
		t.Fatalf("new file:\n%s\nwant\n%s", got, want)
	}
	for p, mode := range map[string]os.FileMode{path: 0o600, path + ".lock": 0o600, dir: 0o700 | os.ModeDir} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode() != mode {
			t.Errorf("%s: mode %v, %v; want %v", p, fi.Mode(), err, mode)
		}
	}

	// A file another tool made world-readable is replaced by a 0600 one.
	os.Chmod(path, 0o644)
	if _, err := a.Put(ctx, "default", []byte(`{"access_token":"y"}`), driver.Condition{}); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode() != 0o600 {
		t.Fatalf("mode after rewrite %v", fi.Mode())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Fatalf("left behind: %v", ents)
	}
}

func TestCorruptFile(t *testing.T) {
	ctx := context.Background()
	cases := []struct{ name, text, offset string }{
		{"syntax", "{\"profiles\": {\"1\": {\"profile\": \"p\",}}}", "byte offset 36"},
		{"table not object", `{"profiles": ["x"]}`, "byte offset 13"},
		{"document not object", `{"profiles": {"1": 5}}`, "byte offset 19"},
		{"duplicate id", `{"profiles": {"1": {}, "1": {}}}`, "byte offset 23"},
		{"top not object", `[]`, "byte offset 0"},
		{"truncated", `{"profiles": {"1": {"profile": "p"`, "byte offset 34"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "credentials.json")
			os.WriteFile(path, []byte(c.text), 0o600)
			a := newAdapter(t, path, nil)
			defer a.Close()
			_, _, err := a.Get(ctx, "p")
			if !errors.Is(err, driver.ErrCorrupt) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), c.offset) {
				t.Fatalf("Get: %v; want ErrCorrupt naming %s and %s", err, path, c.offset)
			}
			if _, err := a.List(ctx); !errors.Is(err, driver.ErrCorrupt) {
				t.Fatalf("List: %v", err)
			}
			if _, err := a.Put(ctx, "p", []byte(`{}`), driver.Condition{}); !errors.Is(err, driver.ErrCorrupt) {
				t.Fatalf("Put: %v", err)
			}
			if err := a.Delete(ctx, "p", driver.Condition{}); !errors.Is(err, driver.ErrCorrupt) {
				t.Fatalf("Delete: %v", err)
			}
			if got, _ := os.ReadFile(path); string(got) != c.text {
				t.Fatalf("corrupt file overwritten with %s", got)
			}
		})
	}
}

func TestEmptyFileIsEmptyStore(t *testing.T) {
	// TinyDB creates the file empty before it first writes.
	path := filepath.Join(t.TempDir(), "credentials.json")
	os.WriteFile(path, []byte("  \n"), 0o600)
	a := newAdapter(t, path, nil)
	defer a.Close()
	if _, _, err := a.Get(context.Background(), "p"); !errors.Is(err, driver.ErrNotFound) {
		t.Fatal(err)
	}
	if _, err := a.Put(context.Background(), "p", []byte(`{}`), driver.IfAbsent()); err != nil {
		t.Fatal(err)
	}
}

func TestPathsAndURLs(t *testing.T) {
	for _, url := range []string{"file://", "file:"} {
		if _, err := driver.Open(context.Background(), url); !errors.Is(err, driver.ErrInvalid) {
			t.Errorf("%s names no file: got %v, want ErrInvalid", url, err)
		}
	}
	wd, _ := os.Getwd()
	for url, want := range map[string]string{
		"file:///abs/dir/creds.json":  "/abs/dir/creds.json",
		"file://localhost/abs/c.json": "/abs/c.json",
		"file:rel/creds.json":         filepath.Join(wd, "rel", "creds.json"),
		"file:///with%20space/c.json": "/with space/c.json",
	} {
		a, err := driver.Open(context.Background(), url)
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		if got := a.(*file.Adapter).Path(); got != want {
			t.Errorf("%s: path %q, want %q", url, got, want)
		}
		a.Close()
	}
	if _, err := driver.Open(context.Background(), "file://otherhost/x.json"); !errors.Is(err, driver.ErrInvalid) {
		t.Fatalf("remote host: %v", err)
	}
}

func TestInvalidValue(t *testing.T) {
	a := newAdapter(t, filepath.Join(t.TempDir(), "c.json"), nil)
	defer a.Close()
	for _, v := range []string{``, `[]`, `"s"`, `{"a":1}x`, `{`} {
		if _, err := a.Put(context.Background(), "p", []byte(v), driver.Condition{}); !errors.Is(err, driver.ErrInvalid) {
			t.Errorf("Put(%q): %v", v, err)
		}
	}
}

const roChild = "TOKENCACHE_FILE_READONLY_CHILD"

// TestReadOnly needs a directory this process cannot write. As root,
// permissions do not stop us, so the check runs in a child process inside
// a private mount namespace where the directory is bind-mounted read-only;
// where that is not permitted it is skipped. TestUncreatableDirectory
// covers the other way a write cannot happen.
func TestReadOnly(t *testing.T) {
	if dir := os.Getenv(roChild); dir != "" {
		checkReadOnly(t, filepath.Join(dir, "credentials.json"))
		return
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "credentials.json")
	a := newAdapter(t, path, nil)
	if _, err := a.Put(context.Background(), "p", []byte(`{"n":1}`), driver.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	a.Close()
	if os.Geteuid() != 0 {
		os.Chmod(path, 0o400)
		os.Chmod(dir, 0o500)
		t.Cleanup(func() { os.Chmod(dir, 0o700) })
		checkReadOnly(t, path)
		return
	}
	script := `mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && exec "$2" -test.run='^TestReadOnly$' -test.v`
	if err := exec.Command("unshare", "-m", "sh", "-c", "mount --bind / /mnt 2>/dev/null; true").Run(); err != nil {
		t.Skipf("cannot make a private mount namespace (%v): read-only case not tested", err)
	}
	cmd := exec.Command("unshare", "-m", "sh", "-c", script, "sh", dir, os.Args[0])
	cmd.Env = append(os.Environ(), roChild+"="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if bytes.Contains(out, []byte("mount")) && !bytes.Contains(out, []byte("=== RUN")) {
			t.Skipf("read-only bind mount not permitted: %s", out)
		}
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("--- PASS: TestReadOnly")) {
		t.Fatalf("child did not run the check:\n%s", out)
	}
	t.Logf("child in a read-only bind mount:\n%s", out)
}

func checkReadOnly(t *testing.T, path string) {
	ctx := context.Background()
	a := newAdapter(t, path, nil)
	defer a.Close()
	v, rev, err := a.Get(ctx, "p")
	if err != nil || !strings.Contains(string(v), `"n":1`) {
		t.Fatalf("Get on a read-only store: %s, %v", v, err)
	}
	_, err = a.Put(ctx, "p", []byte(`{"n":2}`), driver.IfMatch(rev))
	if !errors.Is(err, driver.ErrReadOnly) {
		t.Fatalf("Put on a read-only store: %v", err)
	}
	t.Logf("Put: %v", err)
	if err := a.Delete(ctx, "p", driver.Condition{}); !errors.Is(err, driver.ErrReadOnly) {
		t.Fatalf("Delete on a read-only store: %v", err)
	}
	if names, err := a.List(ctx); err != nil || len(names) != 1 {
		t.Fatalf("List on a read-only store: %q, %v", names, err)
	}
}

// TestUncreatableDirectory: the file's directory would have to be created
// under a regular file. Reads find nothing; writes are ErrReadOnly.
func TestUncreatableDirectory(t *testing.T) {
	blocker := filepath.Join(t.TempDir(), "not-a-dir")
	os.WriteFile(blocker, nil, 0o600)
	a := newAdapter(t, filepath.Join(blocker, "pancloud", "credentials.json"), nil)
	defer a.Close()
	ctx := context.Background()
	if _, _, err := a.Get(ctx, "p"); !errors.Is(err, driver.ErrNotFound) {
		t.Fatalf("Get: %v", err)
	}
	if names, err := a.List(ctx); err != nil || len(names) != 0 {
		t.Fatalf("List: %q, %v", names, err)
	}
	if _, err := a.Put(ctx, "p", []byte(`{}`), driver.IfAbsent()); !errors.Is(err, driver.ErrReadOnly) {
		t.Fatalf("Put: %v", err)
	}
}

func TestCancelledWhileLocked(t *testing.T) {
	// Another process (here: a descriptor of our own) holds the lock; a
	// writer with a deadline gives up waiting for it.
	path := filepath.Join(t.TempDir(), "c.json")
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := flockFile(lock); err != nil {
		t.Fatal(err)
	}
	a := newAdapter(t, path, nil)
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := a.Put(ctx, "p", []byte(`{}`), driver.Condition{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Put while another holds the lock: %v", err)
	}
	unflockFile(lock)
	// The abandoned lock attempt must not leave the Adapter stuck or
	// confused about who holds the lock.
	for i := range 3 {
		if _, err := a.Put(context.Background(), "p", fmt.Appendf(nil, `{"n":%d}`, i), driver.Condition{}); err != nil {
			t.Fatal(err)
		}
	}
}

func ExampleNew() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	a, err := file.New(filepath.Join(dir, "credentials.json"), nil)
	if err != nil {
		log.Fatal(err)
	}
	st := storage.NewStore(a)
	defer st.Close()
	ctx := context.Background()
	st.Update(ctx, "default", func(r *storage.Record) error {
		r.ClientID = "my-client"
		return nil
	})
	r, _, _ := st.Load(ctx, "default")
	fmt.Println(r.Profile, r.ClientID)
	// Output: default my-client
}

func flockFile(f *os.File) error { return unix.Flock(int(f.Fd()), unix.LOCK_EX) }
func unflockFile(f *os.File)     { unix.Flock(int(f.Fd()), unix.LOCK_UN) }

// TestWaitAcrossProcesses: a waiter wakes on another process's write,
// which replaces the file by rename.
func TestWaitAcrossProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "credentials.json")
	dirwatchtest.CrossProcess(t, "file://"+path, 10)
}

func TestWaitClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "credentials.json")
	dirwatchtest.CloseWakes(t, func(t *testing.T) driver.Adapter { return newAdapter(t, path, nil) })
}

// TestWaitInPlaceWrite: pancloud rewrites the file in place, through a
// handle it keeps open, rather than by rename; a waiter must wake for that
// too, and not for files beside it.
func TestWaitInPlaceWrite(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "credentials.json")
	orig := copyFixture(t, path)
	a := newAdapter(t, path, nil)
	defer a.Close()
	_, rev, err := a.Get(ctx, "alpha")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		done <- a.Wait(wctx, "alpha", rev)
	}()
	time.Sleep(20 * time.Millisecond)
	if err := os.WriteFile(filepath.Join(filepath.Dir(path), "unrelated.json"), orig, 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("Wait returned %v on a write to another file", err)
	case <-time.After(50 * time.Millisecond):
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(bytes.Replace(orig, []byte("at-alpha"), []byte("at-ALPHA"), 1), 0); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Wait on an in-place write: %v", err)
	}
}

// TestWaitNoDirectory: with no directory to watch yet, Wait lets the Store
// poll, and watches once the first write has made the directory.
func TestWaitNoDirectory(t *testing.T) {
	ctx := context.Background()
	a := newAdapter(t, filepath.Join(t.TempDir(), "later", "credentials.json"), nil)
	defer a.Close()
	if err := a.Wait(ctx, "p", ""); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Wait without a directory: %v, want ErrUnsupported", err)
	}
	if _, err := a.Put(ctx, "p", []byte(`{}`), driver.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	if err := a.Wait(ctx, "p", ""); err != nil {
		t.Fatalf("Wait after the first write: %v", err)
	}
}

// newAdapter is file.New for a test, which fails on its error.
func newAdapter(tb testing.TB, path string, opts *file.Options) *file.Adapter {
	tb.Helper()
	a, err := file.New(path, opts)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}
