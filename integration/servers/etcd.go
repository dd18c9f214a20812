package servers

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// EnvEtcdEndpoints names an existing etcd cluster, as a comma-separated
// list of host:port client endpoints, to use instead of starting one.
const EnvEtcdEndpoints = "TOKENCACHE_TEST_ETCD_ENDPOINTS"

// etcdModule is the module path of ../etcd, checked so that a directory of
// the same name elsewhere is not built by mistake.
const etcdModule = "github.com/tokencache/tokencache/integration/etcd"

// etcdMembers is the size of StartEtcdCluster's cluster: the smallest that
// keeps a quorum, and so keeps serving, with one member down.
const etcdMembers = 3

// EtcdCluster is a running etcd cluster for tests.
//
// Unlike the other servers of this package its members run as processes of
// the test binary, not in containers: etcd is a static Go binary that needs
// no image, a member starts in a fraction of a second, and killing one with
// SIGKILL is exactly the crash the tests are after. Each member is started
// with the parent-death signal set, so that members do not outlive a test
// binary that is killed before its cleanup.
//
// Its methods are not safe for concurrent use: one goroutine kills and
// starts members (clients of the cluster may of course run meanwhile).
type EtcdCluster struct {
	// Endpoints are the members' client addresses, host:port on 127.0.0.1,
	// in member order.
	Endpoints []string
	// URL is the cluster as a tokencache store URL,
	// "etcd://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/".
	URL string

	bin     string
	dir     string // data directories and logs; removed by Terminate
	members []*etcdMember
	scheme  string       // of the client URLs: http, or https with TLS
	http    *http.Client // for the health and status probes

	mu         sync.Mutex
	terminated bool
}

type etcdMember struct {
	name   string
	client string // host:port
	args   []string
	log    string // file the member's output goes to

	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// StartEtcdCluster builds etcd (go.etcd.io/etcd/server/v3, at the version
// pinned by the integration/etcd module) and starts a three-member cluster
// on loopback ports, returning once every member reports itself healthy
// (it has a leader and serves linearizable reads). The first build takes a
// minute or two; later ones come from the cache. Data lives in a temporary
// directory, fsynced as in production, so a member that is killed and
// started again keeps what it acknowledged.
func StartEtcdCluster(ctx context.Context) (*EtcdCluster, error) {
	return StartEtcdClusterWith(ctx, EtcdOptions{})
}

// EtcdOptions configure StartEtcdClusterWith; the zero value makes
// StartEtcdCluster's cluster.
type EtcdOptions struct {
	// TLS, when set, makes the members serve clients over TLS only and
	// require a client certificate signed by TLS.CAFile. Peers still talk
	// plain HTTP to each other on loopback.
	TLS *EtcdTLS
}

// EtcdTLS names the PEM files of a TLS cluster.
type EtcdTLS struct {
	CAFile            string // the CA that signed every certificate below
	CertFile, KeyFile string // the members' certificate, valid for 127.0.0.1
	// A client certificate and key, which this package's probes present.
	ClientCertFile, ClientKeyFile string
}

// StartEtcdClusterWith is StartEtcdCluster with options. With TLS the URL
// is "etcds://127.0.0.1:P1,.../?ca_file=...&cert_file=...&key_file=..."
// with the client certificate.
func StartEtcdClusterWith(ctx context.Context, opts EtcdOptions) (*EtcdCluster, error) {
	bin, err := etcdBinary(ctx)
	if err != nil {
		return nil, err
	}
	var c *EtcdCluster
	for range 3 {
		// A port taken between freePorts and the member's bind is the only
		// failure worth another attempt, on fresh ports.
		c, err = startEtcdCluster(ctx, bin, opts)
		if err == nil || ctx.Err() != nil || !portConflict(err) {
			break
		}
	}
	return c, err
}

func startEtcdCluster(ctx context.Context, bin string, opts EtcdOptions) (*EtcdCluster, error) {
	ports, err := freePorts(2 * etcdMembers)
	if err != nil {
		return nil, err
	}
	c := &EtcdCluster{bin: bin, scheme: "http", http: http.DefaultClient}
	var tlsArgs []string
	if t := opts.TLS; t != nil {
		tc, err := etcdProbeTLS(t)
		if err != nil {
			return nil, err
		}
		c.scheme = "https"
		c.http = &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
		tlsArgs = []string{"--cert-file", t.CertFile, "--key-file", t.KeyFile,
			"--client-cert-auth", "--trusted-ca-file", t.CAFile}
	}
	dir, err := os.MkdirTemp("", "tokencache-etcd-")
	if err != nil {
		return nil, err
	}
	c.dir = dir
	var initial []string
	for i := range etcdMembers {
		initial = append(initial, fmt.Sprintf("m%d=http://127.0.0.1:%d", i, ports[etcdMembers+i]))
	}
	token := make([]byte, 6)
	rand.Read(token)
	for i := range etcdMembers {
		name := fmt.Sprintf("m%d", i)
		client := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[i]))
		peer := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[etcdMembers+i]))
		m := &etcdMember{
			name:   name,
			client: client,
			log:    filepath.Join(dir, name+".log"),
			args: append([]string{
				"--name", name,
				"--data-dir", filepath.Join(dir, name),
				"--listen-client-urls", c.scheme + "://" + client,
				"--advertise-client-urls", c.scheme + "://" + client,
				"--listen-peer-urls", peer,
				"--initial-advertise-peer-urls", peer,
				"--initial-cluster", strings.Join(initial, ","),
				"--initial-cluster-token", "tokencache-" + hex.EncodeToString(token),
				"--initial-cluster-state", "new",
				"--log-level", "warn",
			}, tlsArgs...),
		}
		c.members = append(c.members, m)
		c.Endpoints = append(c.Endpoints, client)
	}
	c.URL = "etcd://" + strings.Join(c.Endpoints, ",") + "/"
	if t := opts.TLS; t != nil {
		q := url.Values{"ca_file": {t.CAFile}, "cert_file": {t.ClientCertFile}, "key_file": {t.ClientKeyFile}}
		c.URL = "etcds://" + strings.Join(c.Endpoints, ",") + "/?" + q.Encode()
	}
	for i := range c.members {
		if err := c.spawn(i); err != nil {
			return nil, c.fail(err)
		}
	}
	rctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	if err := c.waitHealthy(rctx); err != nil {
		return nil, c.fail(err)
	}
	return c, nil
}

// fail removes the cluster and returns err with the tail of each member's
// log, where a member that exited at once says why.
func (c *EtcdCluster) fail(err error) error {
	var logs []string
	for _, m := range c.members {
		logs = append(logs, m.name+": "+tail(m.log))
	}
	c.Terminate(context.Background())
	return fmt.Errorf("etcd cluster: %w; member output:\n%s", err, strings.Join(logs, "\n---\n"))
}

// External reports whether the cluster came from EnvEtcdEndpoints.
func (c *EtcdCluster) External() bool { return len(c.members) == 0 }

// Members returns the number of members this package started (0 for an
// external cluster).
func (c *EtcdCluster) Members() int { return len(c.members) }

func (c *EtcdCluster) spawn(i int) error {
	m := c.members[i]
	out, err := os.OpenFile(m.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(c.bin, m.args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	out.Close() // the child has its own copy
	if err != nil {
		return fmt.Errorf("start etcd member %s: %w", m.name, err)
	}
	m.cmd, m.done = cmd, make(chan struct{})
	go func() {
		cmd.Wait()
		close(m.done)
	}()
	return nil
}

// KillMember kills member i (0, 1 or 2) with SIGKILL and waits until it is
// gone. Its data stays for StartMember.
func (c *EtcdCluster) KillMember(i int) error {
	if c.External() {
		return ErrExternal
	}
	if i < 0 || i >= len(c.members) {
		return fmt.Errorf("etcd: no member %d", i)
	}
	m := c.members[i]
	if m.cmd == nil {
		return nil
	}
	select {
	case <-m.done:
	default:
		m.cmd.Process.Kill()
		<-m.done
	}
	m.cmd = nil
	return nil
}

// StartMember starts member i again, on the same ports and data, after
// KillMember, and waits until the cluster is healthy.
func (c *EtcdCluster) StartMember(ctx context.Context, i int) error {
	if c.External() {
		return ErrExternal
	}
	if i < 0 || i >= len(c.members) {
		return fmt.Errorf("etcd: no member %d", i)
	}
	if c.members[i].cmd != nil {
		return fmt.Errorf("etcd: member %d is running", i)
	}
	if err := c.spawn(i); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	return c.waitHealthy(ctx)
}

// Leader returns the index of the member that is the Raft leader, asking
// the running members; an error when none knows of one.
func (c *EtcdCluster) Leader(ctx context.Context) (int, error) {
	if c.External() {
		return -1, ErrExternal
	}
	ids := map[string]int{}
	leader := ""
	var last error
	for i, m := range c.members {
		if m.cmd == nil {
			continue
		}
		st, err := c.status(ctx, m.client)
		if err != nil {
			last = err
			continue
		}
		ids[st.Header.MemberID] = i
		if st.Leader != "" && st.Leader != "0" {
			leader = st.Leader
		}
	}
	if i, ok := ids[leader]; ok {
		return i, nil
	}
	return -1, fmt.Errorf("etcd: no running member knows a leader among the running ones (last error: %v)", last)
}

// KillLeader kills the member that is the leader and returns its index.
func (c *EtcdCluster) KillLeader(ctx context.Context) (int, error) {
	i, err := c.Leader(ctx)
	if err != nil {
		return -1, err
	}
	return i, c.KillMember(i)
}

// Stop kills every member, keeping their data, so that Start can bring the
// cluster back on the same endpoints with everything it acknowledged.
func (c *EtcdCluster) Stop(ctx context.Context) error {
	if c.External() {
		return ErrExternal
	}
	for i := range c.members {
		c.KillMember(i)
	}
	return nil
}

// Start starts the members that are not running and waits until the
// cluster is healthy.
func (c *EtcdCluster) Start(ctx context.Context) error {
	if c.External() {
		return ErrExternal
	}
	for i, m := range c.members {
		if m.cmd == nil {
			if err := c.spawn(i); err != nil {
				return err
			}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	return c.waitHealthy(ctx)
}

// Terminate kills every member and removes their data. It may be called
// more than once and does nothing for an external cluster.
func (c *EtcdCluster) Terminate(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.terminated || c.External() {
		return nil
	}
	c.terminated = true
	for i := range c.members {
		c.KillMember(i)
	}
	return os.RemoveAll(c.dir)
}

// waitHealthy waits until every running member answers /health with
// "true": it has a leader and a linearizable read went through.
func (c *EtcdCluster) waitHealthy(ctx context.Context) error {
	for _, m := range c.members {
		if m.cmd == nil {
			continue
		}
		var last error
		for {
			if last = c.healthy(ctx, m.client); last == nil {
				break
			}
			select {
			case <-m.done:
				return fmt.Errorf("member %s exited before it was healthy (last error: %v)", m.name, last)
			case <-ctx.Done():
				return fmt.Errorf("member %s not healthy: %w (last error: %v)", m.name, ctx.Err(), last)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

// healthy asks a member's /health endpoint.
func (c *EtcdCluster) healthy(ctx context.Context, addr string) error {
	var h struct {
		Health string `json:"health"`
		Reason string `json:"reason"`
	}
	if err := c.call(ctx, http.MethodGet, addr, "/health", nil, &h); err != nil {
		return err
	}
	if h.Health != "true" {
		return fmt.Errorf("etcd %s: health %q (%s)", addr, h.Health, h.Reason)
	}
	return nil
}

type etcdStatusReply struct {
	Header struct {
		MemberID string `json:"member_id"`
	} `json:"header"`
	Leader string `json:"leader"`
}

// status calls Maintenance.Status through the member's JSON gateway,
// which reports the member's own id and the leader's.
func (c *EtcdCluster) status(ctx context.Context, addr string) (etcdStatusReply, error) {
	var st etcdStatusReply
	err := c.call(ctx, http.MethodPost, addr, "/v3/maintenance/status", []byte("{}"), &st)
	return st, err
}

func (c *EtcdCluster) call(ctx context.Context, method, addr, path string, body []byte, into any) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	target := c.scheme + "://" + addr + path
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable {
		return fmt.Errorf("etcd %s: %s", target, resp.Status)
	}
	return json.Unmarshal(b, into)
}

// etcdProbeTLS is the probes' TLS configuration: the cluster's CA and the
// client certificate.
func etcdProbeTLS(t *EtcdTLS) (*tls.Config, error) {
	pem, err := os.ReadFile(t.CAFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("etcd: %s holds no PEM certificate", t.CAFile)
	}
	cert, err := tls.LoadX509KeyPair(t.ClientCertFile, t.ClientKeyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	s := strings.TrimSpace(string(b))
	if len(s) > 2000 {
		s = "..." + s[len(s)-2000:]
	}
	return s
}

// etcdBinary builds the integration/etcd module, caching the binary by a
// hash of its go.mod, go.sum and main.go.
func etcdBinary(ctx context.Context) (string, error) {
	dir, err := etcdSourceDir()
	if err != nil {
		return "", err
	}
	key, err := hashFiles(filepath.Join(dir, "go.mod"), filepath.Join(dir, "go.sum"), filepath.Join(dir, "main.go"))
	if err != nil {
		return "", err
	}
	return goBinary(ctx, "etcd", key, func(ctx context.Context, dst string) error {
		return goCommand(ctx, dir, nil, "build", "-trimpath", "-ldflags=-s -w", "-o", dst, ".")
	})
}

// etcdSourceDir finds the integration/etcd module, as ferretdbSourceDir
// finds integration/ferretdb.
func etcdSourceDir() (string, error) {
	var candidates []string
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		candidates = append(candidates, filepath.Join(filepath.Dir(file), "..", "etcd"))
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			candidates = append(candidates, filepath.Join(d, "integration", "etcd"))
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	for _, c := range candidates {
		if modulePathOf(filepath.Join(c, "go.mod")) == etcdModule {
			return filepath.Clean(c), nil
		}
	}
	return "", errors.New("etcd: source module integration/etcd not found next to the servers package or above the working directory; set " + EnvEtcdEndpoints + " to use an existing cluster")
}

// etcdFromEnv returns the external cluster named by EnvEtcdEndpoints, or nil.
func etcdFromEnv() (*EtcdCluster, error) {
	raw := getenv(EnvEtcdEndpoints)
	if raw == "" {
		return nil, nil
	}
	var eps []string
	for _, e := range strings.Split(raw, ",") {
		e = strings.TrimSpace(e)
		if _, _, err := net.SplitHostPort(e); err != nil {
			return nil, envError(EnvEtcdEndpoints, raw, "want host:port[,host:port...]")
		}
		eps = append(eps, e)
	}
	return &EtcdCluster{Endpoints: eps, URL: "etcd://" + strings.Join(eps, ",") + "/"}, nil
}

// Etcd returns an etcd cluster for t: the one named by
// TOKENCACHE_TEST_ETCD_ENDPOINTS, or else three members from
// StartEtcdCluster that are terminated when t ends. It fails t when neither
// can be had.
func Etcd(t testing.TB) *EtcdCluster {
	t.Helper()
	SkipShort(t)
	c, err := acquireEtcd()
	if err != nil {
		t.Fatalf("etcd: %v", err)
	}
	if !c.External() {
		t.Cleanup(func() { c.Terminate(context.Background()) })
	}
	return c
}

func acquireEtcd() (*EtcdCluster, error) {
	c, err := etcdFromEnv()
	if err != nil || c != nil {
		return c, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	c, err = StartEtcdCluster(ctx)
	if err != nil {
		return nil, fmt.Errorf("start (set %s to use an existing cluster): %w", EnvEtcdEndpoints, err)
	}
	return c, nil
}

// SharedEtcdCluster is an etcd cluster started on first use and shared by
// every test of a test binary, like Shared.
type SharedEtcdCluster struct {
	once sync.Once
	c    *EtcdCluster
	err  error
}

// SharedEtcd is a shared StartEtcdCluster, or TOKENCACHE_TEST_ETCD_ENDPOINTS's
// cluster. Tests that kill members should start their own cluster instead.
func SharedEtcd() *SharedEtcdCluster { return &SharedEtcdCluster{} }

// Get returns the cluster, starting it on the first call; it fails t when
// the cluster cannot be had.
func (s *SharedEtcdCluster) Get(t testing.TB) *EtcdCluster {
	t.Helper()
	SkipShort(t)
	s.once.Do(func() { s.c, s.err = acquireEtcd() })
	if s.err != nil {
		t.Fatalf("etcd: %v", s.err)
	}
	return s.c
}

// Terminate stops the cluster, if Get started one.
func (s *SharedEtcdCluster) Terminate() {
	if s.c != nil {
		s.c.Terminate(context.Background())
	}
}
