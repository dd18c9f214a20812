package servers

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// EnvPostgresURL names an existing PostgreSQL server to use instead of
// starting one: postgres://user:password@host:port/dbname.
const EnvPostgresURL = "TOKENCACHE_TEST_POSTGRES_URL"

// PostgresUser is the superuser of StartPostgres's server; its password is
// made per server and is part of the URL.
const PostgresUser = "postgres"

// StartPostgres starts PostgreSQL from Debian's postgresql package as a
// process on this host, not in a container: the server refuses to run as
// root, and a FROM scratch image would need its data directory made by
// initdb as another user, its share files and time zones besides the
// binary. initdb makes a data directory in a temporary directory, owned by
// the postgres user when the tests run as root, with password (SCRAM)
// authentication on TCP and no Unix socket; the server listens on
// 127.0.0.1 at a free port.
//
// Its URL is "postgres://postgres:PASSWORD@127.0.0.1:PORT/postgres?sslmode=disable"
// and its Addr "127.0.0.1:PORT". fsync is off: the data is test data, and
// it survives Stop and Start, which stop the server cleanly (a fast
// shutdown) and start it again on the same port. Terminate removes the data
// directory.
func StartPostgres(ctx context.Context) (*Server, error) {
	bin, err := postgresBinDir()
	if err != nil {
		return nil, err
	}
	cred, err := unprivileged("postgres")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "tokencache-postgres-")
	if err != nil {
		return nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	data, pwfile := filepath.Join(dir, "data"), filepath.Join(dir, "pw")
	var pwb [16]byte
	rand.Read(pwb[:])
	password := hex.EncodeToString(pwb[:])
	if err := os.WriteFile(pwfile, []byte(password+"\n"), 0o600); err != nil {
		cleanup()
		return nil, err
	}
	if err := chownAll(cred, dir, pwfile); err != nil {
		cleanup()
		return nil, err
	}
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"),
		"-D", data, "-U", PostgresUser, "--pwfile", pwfile,
		"--auth-host=scram-sha-256", "--auth-local=scram-sha-256",
		"-E", "UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = sysProcAttr(cred)
	if out, err := initdb.CombinedOutput(); err != nil {
		cleanup()
		return nil, fmt.Errorf("postgres: initdb: %w\n%s", err, out)
	}
	os.Remove(pwfile)

	return startWithRetry(ctx, func(ctx context.Context) (*Server, error) {
		ports, err := freePorts(1)
		if err != nil {
			return nil, err
		}
		port := strconv.Itoa(ports[0])
		p := &hostProcess{
			name: "postgres",
			cred: cred,
			command: func() *exec.Cmd {
				return exec.Command(filepath.Join(bin, "postgres"), "-D", data,
					"-p", port,
					"-c", "listen_addresses=127.0.0.1",
					"-c", "unix_socket_directories=",
					"-c", "fsync=off",
					"-c", "full_page_writes=off",
					"-c", "max_connections=300",
					// Ends the log's noise about every connection.
					"-c", "log_min_messages=warning")
			},
		}
		addr := net.JoinHostPort("127.0.0.1", port)
		u := &url.URL{Scheme: "postgres", User: url.UserPassword(PostgresUser, password), Host: addr, Path: "/postgres", RawQuery: "sslmode=disable"}
		s := &Server{URL: u.String(), Addr: addr, Addrs: []string{addr}, proc: p}
		s.ready = func(ctx context.Context) error {
			return waitProcessReady(ctx, p, func(ctx context.Context) error { return probePostgres(ctx, addr) })
		}
		if err := p.start(); err != nil {
			return nil, err
		}
		rctx, cancel := context.WithTimeout(ctx, readyTimeout)
		defer cancel()
		if err := s.ready(rctx); err != nil {
			p.stop(context.WithoutCancel(ctx))
			return nil, err
		}
		// The data directory goes with the last Terminate only: a retry
		// on another port reuses it.
		p.cleanup = cleanup
		return s, nil
	})
}

// Postgres returns a PostgreSQL server for t: the one named by
// TOKENCACHE_TEST_POSTGRES_URL, or else one from StartPostgres that is
// stopped and removed when t ends. It fails t when neither can be had.
func Postgres(t testing.TB) *Server {
	t.Helper()
	return forTest(t, "postgres", postgresFromEnv, StartPostgres)
}

// SharedPostgres is a shared StartPostgres, or
// TOKENCACHE_TEST_POSTGRES_URL's server.
func SharedPostgres() *Shared {
	return &Shared{name: "postgres", fromEnv: postgresFromEnv, start: StartPostgres}
}

func postgresFromEnv() (*Server, error) {
	raw := getenv(EnvPostgresURL)
	if raw == "" {
		return nil, nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, envError(EnvPostgresURL, raw, "want postgres://user:password@host:port/dbname")
	}
	return externalServer(raw, strings.Split(u.Host, ",")...), nil
}

// postgresBinDir finds Debian's PostgreSQL programs, which live in
// /usr/lib/postgresql/VERSION/bin rather than on PATH; the newest version
// wins.
func postgresBinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	var best string
	bestVersion := -1
	for _, d := range dirs {
		v, err := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		if err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil && v > bestVersion {
			best, bestVersion = d, v
		}
	}
	if best == "" {
		if p, err := exec.LookPath("postgres"); err == nil {
			return filepath.Dir(p), nil
		}
		return "", fmt.Errorf("postgres not found in /usr/lib/postgresql/*/bin or on PATH: install it (apt-get install postgresql; scripts/test.sh does)")
	}
	return best, nil
}

// probePostgres sends a startup message and reads the first reply: an
// authentication request ('R') means the server accepts connections; an
// error ('E') is, while it starts, "the database system is starting up".
func probePostgres(ctx context.Context, addr string) error {
	conn, err := dial(ctx, addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	var body bytes.Buffer
	binary.Write(&body, binary.BigEndian, int32(3<<16)) // protocol 3.0
	for _, kv := range []string{"user", PostgresUser, "database", "postgres"} {
		body.WriteString(kv)
		body.WriteByte(0)
	}
	body.WriteByte(0)
	msg := binary.BigEndian.AppendUint32(nil, uint32(4+body.Len()))
	msg = append(msg, body.Bytes()...)
	if _, err := conn.Write(msg); err != nil {
		return err
	}
	var hdr [5]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		return err
	}
	switch hdr[0] {
	case 'R':
		return nil
	case 'E':
		n := int(binary.BigEndian.Uint32(hdr[1:])) - 4
		if n < 0 || n > 1<<16 {
			return fmt.Errorf("postgres: bad error reply length %d", n)
		}
		b := make([]byte, n)
		io.ReadFull(conn, b)
		// Fields are a type byte and a NUL-terminated string; 'M' is the
		// message.
		for f := range bytes.SplitSeq(b, []byte{0}) {
			if len(f) > 0 && f[0] == 'M' {
				return fmt.Errorf("postgres: %s", f[1:])
			}
		}
		return fmt.Errorf("postgres: error reply")
	default:
		return fmt.Errorf("postgres: unexpected reply %q", hdr[0])
	}
}
