package servers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
)

// ErrExternal is returned by Stop and Start of a Server that was given by an
// environment variable: it has no container this package may stop.
var ErrExternal = errors.New("servers: server is external (from an environment variable) and cannot be stopped or started")

// Label is set on every container this package starts, so leftovers of a
// killed test run can be found (docker ps -a --filter label=...).
const Label = "org.tokencache.test-server"

// readyTimeout bounds how long a started container may take to answer its
// protocol; the slowest (FerretDB) answers in about a second.
const readyTimeout = 60 * time.Second

// Server is a running server for tests.
type Server struct {
	// URL is how a client of the server is configured: see each Start
	// function for its form.
	URL string
	// Addr is host:port of the server on the loopback interface (the first
	// node, for a cluster).
	Addr string
	// Addrs holds host:port of every node: one for a single server, three
	// for StartRedisCluster.
	Addrs []string
	// Container is the server's container; for a cluster, the first node's.
	// It is nil for an external server.
	Container testcontainers.Container
	// Containers holds every container behind the server (the three nodes
	// of a cluster); it is empty for an external server.
	Containers []testcontainers.Container

	// ready blocks until the server answers its protocol again, used after
	// Start.
	ready func(ctx context.Context) error
	// proc is set for a server run as a process on this host instead of
	// in a container (see process.go); Stop, Start and Terminate act on it.
	proc *hostProcess

	mu         sync.Mutex
	terminated bool
}

// External reports whether the server came from an environment variable
// instead of a container started by this package.
func (s *Server) External() bool { return len(s.Containers) == 0 && s.proc == nil }

// Stop stops the server's containers, keeping them (and their data) so that
// Start can bring the server back on the same address. Tests use it to see
// how clients behave while a backend is down.
func (s *Server) Stop(ctx context.Context) error {
	if s.External() {
		return ErrExternal
	}
	if s.proc != nil {
		return s.proc.stop(ctx)
	}
	// A short stop timeout: these servers keep nothing worth a clean
	// shutdown, and a test waiting on Stop should not wait long.
	timeout := 5 * time.Second
	var errs []error
	for _, c := range s.Containers {
		if err := c.Stop(ctx, &timeout); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Start starts the containers that Stop stopped and waits until the server
// answers on the same address as before.
func (s *Server) Start(ctx context.Context) error {
	if s.External() {
		return ErrExternal
	}
	if s.proc != nil {
		if err := s.proc.start(); err != nil {
			return err
		}
	}
	for _, c := range s.Containers {
		if err := c.Start(ctx); err != nil {
			return err
		}
	}
	if s.ready == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	return s.ready(ctx)
}

// Terminate removes the server's containers. It may be called more than once
// and does nothing for an external server.
func (s *Server) Terminate(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.terminated {
		return nil
	}
	s.terminated = true
	if s.proc != nil {
		return s.proc.terminate(ctx)
	}
	return terminateAll(ctx, s.Containers)
}

func terminateAll(ctx context.Context, cs []testcontainers.Container) error {
	var errs []error
	for _, c := range cs {
		if c == nil {
			continue
		}
		if err := c.Terminate(ctx, testcontainers.StopTimeout(time.Second)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

var envOnce sync.Once

// setDockerEnv applies this machine's testcontainers-go settings before the
// first container is created (testcontainers-go reads its configuration once
// per process). Values set by the user win.
func setDockerEnv() {
	envOnce.Do(func() {
		// The override is only right for a local daemon: with a remote
		// DOCKER_HOST the published ports are on that host.
		dh := os.Getenv("DOCKER_HOST")
		if _, ok := os.LookupEnv("TESTCONTAINERS_HOST_OVERRIDE"); !ok && (dh == "" || strings.HasPrefix(dh, "unix://")) {
			os.Setenv("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1")
		}
		if _, ok := os.LookupEnv("TESTCONTAINERS_RYUK_DISABLED"); !ok {
			os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
		}
	})
}

// quietLogger keeps testcontainers-go's per-container chatter out of test
// output; failures come back as errors instead.
var quietLogger tclog.Logger = tclog.Logger(discardLogger{})

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}

// containerSpec describes one container to run from a locally built image.
type containerSpec struct {
	image string
	// containerPort is the port the server listens on inside the container
	// ("6379/tcp"); it is published on hostPort of 127.0.0.1. Empty with
	// hostNetwork.
	containerPort string
	hostPort      int
	// hostNetwork runs the container in the host's network namespace; the
	// command must then bind 127.0.0.1 itself.
	hostNetwork bool
	cmd         []string
	env         map[string]string
}

// runContainer creates and starts a container; readiness is checked by the
// caller with a protocol probe, because a FROM scratch image has no shell for
// testcontainers-go's own port checks, and Docker's port proxy accepts
// connections before the server inside listens.
func runContainer(ctx context.Context, spec containerSpec) (testcontainers.Container, error) {
	req := testcontainers.ContainerRequest{
		Image:  spec.image,
		Cmd:    spec.cmd,
		Env:    spec.env,
		Labels: map[string]string{Label: "true"},
	}
	if spec.hostNetwork {
		req.HostConfigModifier = func(hc *container.HostConfig) {
			hc.NetworkMode = "host"
		}
	} else {
		port, err := network.ParsePort(spec.containerPort)
		if err != nil {
			return nil, err
		}
		req.ExposedPorts = []string{spec.containerPort}
		// A fixed host port, not an ephemeral one, so that Stop and Start
		// keep the address: Docker would pick a new ephemeral port on
		// every start.
		req.HostConfigModifier = func(hc *container.HostConfig) {
			hc.PortBindings = network.PortMap{port: {{
				HostIP:   netip.AddrFrom4([4]byte{127, 0, 0, 1}),
				HostPort: strconv.Itoa(spec.hostPort),
			}}}
		}
	}
	c, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: req,
		Started:          true,
		Logger:           quietLogger,
	})
	if err != nil {
		// GenericContainer may return a created but unstarted container.
		if c != nil {
			_ = c.Terminate(context.WithoutCancel(ctx))
		}
		return nil, fmt.Errorf("run %s: %w", spec.image, err)
	}
	return c, nil
}

// freePorts reserves n distinct free TCP ports on 127.0.0.1 by listening on
// port 0, then releases them for the container. Another process could take
// one in between; startWithRetry covers that rare case.
func freePorts(n int) ([]int, error) {
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// startWithRetry runs start up to three times: the only failure worth a
// retry is a host port taken between freePorts and the container's start,
// and a fresh attempt picks fresh ports.
func startWithRetry(ctx context.Context, start func(ctx context.Context) (*Server, error)) (*Server, error) {
	var err error
	for range 3 {
		var s *Server
		s, err = start(ctx)
		if err == nil {
			return s, nil
		}
		if ctx.Err() != nil || !portConflict(err) {
			return nil, err
		}
	}
	return nil, err
}

func portConflict(err error) bool {
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "address already in use") ||
		strings.Contains(msg, "port is already allocated")
}

// waitReady polls probe until it succeeds or ctx ends. It gives up early when
// one of cs has exited, since a server that failed to start (say, its port
// was taken) will not answer later either.
func waitReady(ctx context.Context, what string, cs []testcontainers.Container, probe func(ctx context.Context) error) error {
	var last error
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		last = probe(pctx)
		cancel()
		if last == nil {
			return nil
		}
		for _, c := range cs {
			if st, err := c.State(ctx); err == nil && !st.Running {
				return fmt.Errorf("%s exited (code %d) before it was ready (last error: %v)", what, st.ExitCode, last)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w (last error: %v)", what, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// containerLogs returns the tail of a container's output for error messages:
// a server that exits at once says why only there.
func containerLogs(ctx context.Context, c testcontainers.Container) string {
	if c == nil {
		return ""
	}
	rc, err := c.Logs(ctx)
	if err != nil {
		return ""
	}
	defer rc.Close()
	b, _ := io.ReadAll(io.LimitReader(rc, 1<<20))
	s := strings.TrimSpace(string(b))
	if len(s) > 2000 {
		s = "..." + s[len(s)-2000:]
	}
	return s
}

// startSingle runs one container from spec with a fresh host port, waits
// for probe and returns it as a Server whose URL is made by url.
func startSingle(ctx context.Context, name string, spec containerSpec, probe func(ctx context.Context, addr string) error, url func(addr string) string) (*Server, error) {
	setDockerEnv()
	return startWithRetry(ctx, func(ctx context.Context) (*Server, error) {
		ports, err := freePorts(1)
		if err != nil {
			return nil, err
		}
		spec.hostPort = ports[0]
		c, err := runContainer(ctx, spec)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(spec.hostPort))
		s := &Server{
			URL:        url(addr),
			Addr:       addr,
			Addrs:      []string{addr},
			Container:  c,
			Containers: []testcontainers.Container{c},
		}
		s.ready = func(ctx context.Context) error {
			return waitReady(ctx, name, s.Containers, func(ctx context.Context) error { return probe(ctx, addr) })
		}
		rctx, cancel := context.WithTimeout(ctx, readyTimeout)
		defer cancel()
		if err := s.ready(rctx); err != nil {
			logs := containerLogs(context.WithoutCancel(ctx), c)
			_ = s.Terminate(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("%s: %w; container output:\n%s", name, err, logs)
		}
		return s, nil
	})
}

// externalServer makes a Server for an address given by the user.
func externalServer(url string, addrs ...string) *Server {
	s := &Server{URL: url, Addrs: addrs}
	if len(addrs) > 0 {
		s.Addr = addrs[0]
	}
	return s
}
