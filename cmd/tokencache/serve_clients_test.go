package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokencache/tokencache/oauthtest"
)

// docSnippet returns the code block that follows the line containing
// marker in the agent package's documentation, so that the clients users
// copy from it are the ones tested here.
func docSnippet(t *testing.T, marker string) string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("..", "..", "agent", "doc.go"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(src), "\n")
	var code []string
	found := false
	for _, l := range lines {
		if !found {
			found = strings.Contains(l, marker)
			continue
		}
		switch {
		case strings.HasPrefix(l, "//\t"):
			code = append(code, strings.TrimPrefix(l, "//\t"))
		case l == "//":
			if len(code) > 0 {
				code = append(code, "")
			}
		default:
			if len(code) > 0 {
				return strings.TrimSpace(strings.Join(code, "\n")) + "\n"
			}
		}
	}
	t.Fatalf("no code block after %q in agent/doc.go", marker)
	return ""
}

// TestServeDocumentedClients runs the curl, Python and Node clients of the
// agent's documentation, as written there, against the built binary.
func TestServeDocumentedClients(t *testing.T) {
	p := newIDP(t, oauthtest.Options{Rotate: true})
	dir := t.TempDir()
	store := sqliteURL(filepath.Join(dir, "tokens.db"))
	p.initExpired(t, store, "default")
	runtimeDir := filepath.Join(dir, "xdg")
	if err := os.Mkdir(runtimeDir, 0o700); err != nil {
		t.Fatal(err)
	}
	env := append(journalEnv(t), "XDG_RUNTIME_DIR="+runtimeDir)
	a := startAgent(t, env, "--store", store, "serve")
	if want := "unix:" + filepath.Join(runtimeDir, "tokencache", "agent.sock"); a.where != want {
		t.Fatalf("default socket %q, want %q", a.where, want)
	}
	// run runs a client; one whose tool is not installed is skipped (the
	// agent's own behaviour is tested in Go; this checks the documentation).
	run := func(t *testing.T, tool, name string, args ...string) []string {
		t.Helper()
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+runtimeDir)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s: %v; stderr: %s", name, err, errb.String())
		}
		return strings.Fields(out.String())
	}
	t.Run("curl", func(t *testing.T) {
		out := run(t, "curl", "sh", "-c", docSnippet(t, "With curl"))
		if len(out) != 1 || !p.Valid(out[0]) {
			t.Errorf("curl printed %q, want one valid token", out)
		}
	})
	t.Run("python", func(t *testing.T) {
		script := docSnippet(t, "From Python") + "\nfirst = token()\nprint(first)\nprint(token(rejected=first))\n"
		out := run(t, "python3", "python3", "-c", script)
		if len(out) != 2 || !p.Valid(out[0]) || !p.Valid(out[1]) || out[0] == out[1] {
			t.Errorf("python printed %q, want a valid token, then its valid successor after the report", out)
		}
	})
	t.Run("node", func(t *testing.T) {
		script := docSnippet(t, "From Node") + "\ntoken().then((t) => console.log(t), (e) => { console.error(e.message); process.exit(1); });\n"
		out := run(t, "node", "node", "-e", script)
		if len(out) != 1 || !p.Valid(out[0]) {
			t.Errorf("node printed %q, want one valid token", out)
		}
	})
	if st := p.Stats(); st.ReuseDetections != 0 {
		t.Errorf("%d reuse detections", st.ReuseDetections)
	}
}
