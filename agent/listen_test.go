package agent_test

import (
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokencache/tokencache/agent"
)

func TestListenUnixMode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run", "tokencache") // created 0700
	sock := filepath.Join(dir, "agent.sock")
	l, err := agent.ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want a socket with 0600", fi.Mode())
	}
	if di, _ := os.Stat(dir); di.Mode().Perm() != 0o700 {
		t.Errorf("created directory mode %v, want 0700", di.Mode().Perm())
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != uint32(os.Geteuid()) {
		t.Errorf("socket owner %d, want %d", st.Uid, os.Geteuid())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("directory holds %d entries, want the socket only (no temporary left)", len(ents))
	}
	// A second agent on the same path is refused while the first lives.
	if l2, err := agent.ListenUnix(sock); err == nil {
		l2.Close()
		t.Error("a second ListenUnix on a live socket succeeded")
	}
	l.Close()
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("Close left the socket: %v", err)
	}
}

func TestListenUnixReplacesStaleSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	// A socket whose agent died without removing it.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	l, err := agent.ListenUnix(sock)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	l.Close()
}

func TestListenUnixRefusesUnsafePlaces(t *testing.T) {
	base := t.TempDir()
	open := filepath.Join(base, "open")
	os.Mkdir(open, 0o755)
	os.Chmod(open, 0o777) // umask-proof: writable by everyone, like /tmp
	real := filepath.Join(base, "real")
	os.Mkdir(real, 0o700)
	link := filepath.Join(base, "link")
	os.Symlink(real, link)
	file := filepath.Join(real, "file")
	os.WriteFile(file, nil, 0o600)
	for name, path := range map[string]string{
		"world-writable directory": filepath.Join(open, "agent.sock"),
		"symlinked directory":      filepath.Join(link, "agent.sock"),
		"a regular file in place":  file,
	} {
		if l, err := agent.ListenUnix(path); err == nil {
			l.Close()
			t.Errorf("%s: ListenUnix succeeded", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	if _, err := os.Stat(file); err != nil {
		t.Error("the regular file in the socket's place was removed")
	}
}

// TestUnixSocketOwnerOnly: another user cannot connect to the socket,
// even from a directory everyone may enter. It runs this test binary as
// user nobody, which takes root; the control (a 0666 socket) shows the
// other user could connect were it not for the mode.
func TestUnixSocketOwnerOnly(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("running a process as another user needs root; the socket mode is checked by TestListenUnixMode")
	}
	dir, err := os.MkdirTemp("", "agent-owner-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	// The test binary, where user nobody can run it.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "agent.test")
	copyFile(t, self, bin)
	sock := filepath.Join(dir, "agent.sock")
	l, err := agent.ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	dialAsNobody := func() (string, error) {
		cmd := exec.Command(bin, "-test.run=^$")
		cmd.Env = []string{"AGENT_TEST_DIAL=" + sock}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := dialAsNobody()
	if err == nil || !strings.Contains(out, "permission denied") {
		t.Errorf("user nobody dialling the 0600 socket: %v, %q; want permission denied", err, out)
	}
	os.Chmod(sock, 0o666)
	if out, err := dialAsNobody(); err != nil || !strings.Contains(out, "connected") {
		t.Fatalf("control: user nobody could not connect to a 0666 socket either (%v, %q): the test proves nothing", err, out)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestConnectionLimit: beyond its limit of open connections the listener
// accepts no more until one closes.
func TestConnectionLimit(t *testing.T) {
	const max = 8
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := agent.LimitListener(inner, max)
	defer l.Close()
	accepted := make(chan net.Conn, max+1)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	var clients []net.Conn
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	for range max + 1 {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	var held []net.Conn
	for range max {
		held = append(held, <-accepted)
	}
	select {
	case <-accepted:
		t.Fatal("accepted a connection beyond the limit")
	case <-time.After(200 * time.Millisecond):
	}
	held[0].Close()
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("no connection accepted after one closed")
	}
	for _, c := range held[1:] {
		c.Close()
	}
}
