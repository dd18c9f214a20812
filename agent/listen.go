package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Server bounds: every connection is timed, so slow or stalled clients
// (slow-loris) cannot hold the agent's connections or goroutines.
const (
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
	MaxHeaderBytes           = 16 << 10
	// MaxConns bounds the connections a listener from ListenUnix or
	// ListenLoopback holds open at once; beyond it Accept waits for one to
	// close, so a flood of idle connections (each closed within
	// ReadHeaderTimeout) delays clients instead of exhausting descriptors.
	MaxConns = 4096
)

// NewServer returns an http.Server for h with the agent's bounds: headers
// within DefaultReadHeaderTimeout and MaxHeaderBytes, the body within
// another DefaultReadHeaderTimeout, the response within wait (the longest
// a request waits for a refresh) plus that, idle keep-alive connections
// closed after DefaultIdleTimeout. Callers may tighten the fields before
// serving.
func NewServer(h http.Handler, wait time.Duration, logger *slog.Logger) *http.Server {
	if wait <= 0 {
		wait = DefaultWaitTimeout
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: DefaultReadHeaderTimeout,
		ReadTimeout:       2 * DefaultReadHeaderTimeout,
		WriteTimeout:      wait + 2*DefaultReadHeaderTimeout,
		IdleTimeout:       DefaultIdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
	}
	if logger != nil {
		srv.ErrorLog = slog.NewLogLogger(logger.Handler(), slog.LevelDebug)
	} else {
		srv.ErrorLog = log.New(discard{}, "", 0)
	}
	return srv
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// ListenLoopback listens on a TCP address whose host is a loopback
// address or "localhost" (taken as 127.0.0.1), and refuses any other: a
// token agent on a reachable address is a token service for the network.
func ListenLoopback(addr string) (net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("agent: listen address %q: %w", addr, err)
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("agent: listen address %q: only loopback addresses (127.0.0.1, [::1]) are allowed", addr)
	}
	l, err := net.Listen("tcp", net.JoinHostPort(ip.String(), port))
	if err != nil {
		return nil, err
	}
	return LimitListener(l, MaxConns), nil
}

// ListenUnix listens on a Unix socket at path that only this user can
// connect to (mode 0600). The socket's directory must be a real directory
// (not a symbolic link) owned by this user or root and writable by no one
// else, so that nobody can replace the socket with their own; a missing
// one is created 0700. A stale socket left by a crashed agent is replaced;
// a live one (another agent answers) or any other file is an error.
//
// The socket is created in a private directory, given its mode, and only
// then renamed into place: it is never reachable with a wider mode. Close
// removes it.
func ListenUnix(path string) (net.Listener, error) {
	path = filepath.Clean(path)
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("agent: socket directory: %w", err)
	}
	if err := checkDir(dir); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("agent: %s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("agent: another agent is listening on %s", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("agent: removing stale socket: %w", err)
		}
	}
	tmp, err := os.MkdirTemp(dir, ".tokencache-agent-")
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	defer os.RemoveAll(tmp)
	tmpSock := filepath.Join(tmp, "s")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmpSock, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	l.SetUnlinkOnClose(false)
	fail := func(err error) (net.Listener, error) {
		l.Close()
		return nil, fmt.Errorf("agent: %w", err)
	}
	if err := os.Chmod(tmpSock, 0o600); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmpSock, path); err != nil {
		return fail(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fail(err)
	}
	return LimitListener(&unixListener{UnixListener: l, path: path, fi: fi}, MaxConns), nil
}

// checkDir refuses a socket directory someone else could write to.
func checkDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("agent: socket directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("agent: socket directory %s is not a directory (a symbolic link is refused)", dir)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return errors.New("agent: cannot check the owner of the socket directory on this system")
	}
	if uid := uint32(os.Geteuid()); st.Uid != uid && st.Uid != 0 {
		return fmt.Errorf("agent: socket directory %s belongs to user %d, not to this user (%d) or root", dir, st.Uid, uid)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("agent: socket directory %s is writable by others (mode %v): use a private directory such as $XDG_RUNTIME_DIR", dir, fi.Mode().Perm())
	}
	return nil
}

type unixListener struct {
	*net.UnixListener
	path string
	fi   fs.FileInfo
}

// Close stops listening and removes the socket, unless another agent has
// replaced it since.
func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	if fi, serr := os.Lstat(l.path); serr == nil && os.SameFile(fi, l.fi) {
		os.Remove(l.path)
	}
	return err
}

// LimitListener returns a listener that holds at most n accepted
// connections open: beyond that Accept waits for one to close. ListenUnix
// and ListenLoopback use it with MaxConns.
func LimitListener(l net.Listener, n int) net.Listener {
	return &limitListener{Listener: l, sem: make(chan struct{}, n), done: make(chan struct{})}
}

type limitListener struct {
	net.Listener
	sem  chan struct{}
	done chan struct{}
	once sync.Once
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
