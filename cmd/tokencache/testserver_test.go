package main

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestTestServer runs "tokencache test-server" as a newcomer would: it
// reads what the server printed, pastes its command lines into a shell
// (init, token, refresh), checks that rotation and reuse detection are on,
// and authorizes a public client with login --device against it.
func TestTestServer(t *testing.T) {
	t.Parallel()
	store := fileURL(filepath.Join(t.TempDir(), "try.json"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv := exec.CommandContext(ctx, binary, "--store", store, "test-server", "--device-interval", "1s")
	srv.Env = cleanEnv()
	var logs bytes.Buffer
	srv.Stderr = &logs
	out, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Process.Kill()

	printed := map[string]string{}
	var pasted []string // the command lines to try, in order
	var all strings.Builder
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		all.WriteString(line + "\n")
		trimmed := strings.TrimSpace(line)
		if k, v, ok := strings.Cut(trimmed, ": "); ok && strings.HasPrefix(line, "  ") && !strings.Contains(k, " tokencache") {
			printed[k] = strings.TrimSpace(v)
		}
		if !strings.HasPrefix(line, "  ") {
			continue
		}
		if strings.HasPrefix(trimmed, "export ") || strings.HasPrefix(trimmed, "PAN_") || strings.HasPrefix(trimmed, "tokencache ") {
			pasted = append(pasted, trimmed)
		}
		if strings.HasPrefix(trimmed, "tokencache login try-browser") {
			break
		}
	}
	for _, k := range []string{"token URL", "revocation URL", "device URL", "verification page", "client id", "client secret", "refresh token", "public client id"} {
		if printed[k] == "" {
			t.Fatalf("test-server printed no %q:\n%s", k, all.String())
		}
	}
	if len(pasted) < 4 || !strings.Contains(pasted[0], store) || !strings.Contains(pasted[1], " init try ") {
		t.Fatalf("command lines to paste:\n%s", strings.Join(pasted, "\n"))
	}
	seed := printed["refresh token"]
	if strings.Contains(pasted[1], "--client-secret") || !strings.Contains(pasted[1], "PAN_REFRESH_TOKEN="+seed) {
		t.Errorf("the init line does not pass its secrets by environment: %s", pasted[1])
	}

	// Paste export, init and token into a shell that finds this build as
	// "tokencache".
	sh := exec.CommandContext(ctx, "sh", "-ec", strings.Join(pasted[:3], "\n"))
	sh.Env = append(cleanEnv(), "PATH="+filepath.Dir(binary)+string(os.PathListSeparator)+os.Getenv("PATH"))
	var shOut, shErr bytes.Buffer
	sh.Stdout, sh.Stderr = &shOut, &shErr
	if err := sh.Run(); err != nil {
		t.Fatalf("pasting init and token: %v\n%s%s", err, shOut.String(), shErr.String())
	}
	lines := strings.Split(strings.TrimSpace(shOut.String()), "\n")
	tok := lines[len(lines)-1]
	rec := loadRecord(t, store, "try")
	if rec.AccessToken.Reveal() != tok || strings.Count(tok, ".") != 2 || rec.RefreshToken.Reveal() == seed {
		t.Fatalf("token printed %q; the store holds another token, or the seed was not rotated", tok)
	}
	cli(t, nil, "--store", store, "refresh", "try").mustSucceed(t)

	// Reuse detection: the spent seed presented again revokes the grant,
	// so the profile's current refresh token stops working too.
	resp, err := http.PostForm(printed["token URL"], url.Values{"grant_type": {"refresh_token"}, "refresh_token": {seed},
		"client_id": {printed["client id"]}, "client_secret": {printed["client secret"]}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a spent refresh token answered %d", resp.StatusCode)
	}
	if r := cli(t, nil, "--store", store, "refresh", "try"); r.code != exitReauth {
		t.Errorf("refresh after reuse detection: exit %d, %s", r.code, r.stderr)
	}

	// login --device with the public client, approved on the verification page.
	fields := strings.Fields(pasted[len(pasted)-2])
	if len(fields) < 3 || fields[1] != "login" || fields[2] != "--device" {
		t.Fatalf("no login --device line: %v", pasted)
	}
	d := startDeviceLogin(t, nil, append([]string{"--store", store}, fields[3:]...)...)
	if d.verify != printed["verification page"] {
		t.Errorf("login --device points at %q", d.verify)
	}
	resp, err = http.PostForm(d.verify, url.Values{"user_code": {d.userCode}, "action": {"approve"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("approving on the verification page: %d", resp.StatusCode)
	}
	if code, _, stderr := d.wait(t); code != 0 {
		t.Fatalf("login --device against test-server: exit %d: %s", code, stderr)
	}
	cli(t, nil, "--store", store, "token", "try-device").mustSucceed(t)

	srv.Process.Signal(syscall.SIGTERM)
	if err := srv.Wait(); err != nil {
		t.Errorf("test-server after SIGTERM: %v", err)
	}
	l := logs.String()
	if !strings.Contains(l, "refresh token reuse detected") || !strings.Contains(l, "grant_type=refresh_token") || !strings.Contains(l, "stopped") {
		t.Errorf("test-server's log lacks the requests or the reuse:\n%s", l)
	}
	for _, s := range []string{printed["client secret"], seed, tok} {
		if strings.Contains(l, s) {
			t.Error("test-server logged a secret or a token")
		}
	}
}
