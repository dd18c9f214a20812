package servers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/testcontainers/testcontainers-go"
)

// EnvRedisSentinelURL names an existing Sentinel-managed Redis to use
// instead of containers.
const EnvRedisSentinelURL = "TOKENCACHE_TEST_REDIS_SENTINEL_URL"

// SentinelMasterName is the name under which StartRedisSentinel's Sentinels
// monitor the master: the master_name of its URL.
const SentinelMasterName = "mymaster"

// sentinelCount Sentinels with a quorum of two, the smallest group that
// agrees on a failover the way production ones do; on two cores the three
// extra containers start side by side in about the time of one.
const (
	sentinelCount  = 3
	sentinelQuorum = 2
)

// sentinelConfPath is where the Sentinel configuration sits in the image.
// Sentinel refuses to start without a configuration file it can write (it
// saves its state there), and a FROM scratch image has no shell to create
// one at start, so the image carries it, in a directory root may write to.
// It is all but empty: ports and the master come at run time, because the
// master's port is chosen per start.
const sentinelConfPath = "/data/sentinel.conf"

const sentinelConf = "# Sentinel rewrites this file with its state; package servers sets the rest at run time.\n"

// sentinelImage is the Redis image plus sentinelConfPath. It also runs the
// master, so that a Sentinel group needs one image.
func sentinelImage(ctx context.Context) (string, error) {
	files, err := redisFiles()
	if err != nil {
		return "", err
	}
	conf, err := sentinelConfFile()
	if err != nil {
		return "", err
	}
	return ensureImage(ctx, imageSpec{
		name:  "redis-sentinel",
		files: append(files, imageFile{path: sentinelConfPath, src: conf, mode: 0o644}),
		tail:  []string{"WORKDIR /data", `ENTRYPOINT ["/usr/bin/redis-server"]`},
	})
}

// sentinelConfFile writes sentinelConf into cacheDir for the image build,
// which copies files from the host. It renames a temporary file into place
// so that a concurrent test process never reads (and hashes) a half-written
// one.
func sentinelConfFile() (string, error) {
	dir, err := cacheDir()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "sentinel.conf")
	if b, err := os.ReadFile(path); err == nil && string(b) == sentinelConf {
		return path, nil
	}
	f, err := os.CreateTemp(dir, "sentinel.conf.*")
	if err != nil {
		return "", err
	}
	_, err = f.WriteString(sentinelConf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return path, nil
}

// StartRedisSentinel starts a Redis master and three Sentinels (quorum two)
// that monitor it as SentinelMasterName, one container each, and returns
// once every Sentinel hands out the master's address.
//
// Its URL is
// "redis://127.0.0.1:S1/0?master_name=mymaster&addr=127.0.0.1:S2&addr=127.0.0.1:S3",
// the form that go-redis's ParseFailoverURL and the storage/redis adapter
// read. Addr and Addrs are the Sentinels' addresses, as the URL names them
// (and as redis.FailoverOptions.SentinelAddrs wants them), not the master's:
// clients ask a Sentinel where the master is. Container is the master's.
//
// There are no replicas, so a Sentinel cannot fail over: the group is for
// testing that clients find the master through Sentinel, not failover.
//
// All four run in the host's network namespace, bound to 127.0.0.1: a
// Sentinel gives clients the master's address as it sees it, so the master
// must be reached at the same address from inside and outside. Stop stops
// the master and the Sentinels; Start brings them back on the same ports,
// the Sentinels still monitoring the master (their configuration file
// survives in the stopped containers).
func StartRedisSentinel(ctx context.Context) (*Server, error) {
	image, err := sentinelImage(ctx)
	if err != nil {
		return nil, err
	}
	setDockerEnv()
	return startWithRetry(ctx, func(ctx context.Context) (*Server, error) {
		return startRedisSentinel(ctx, image)
	})
}

func startRedisSentinel(ctx context.Context, image string) (*Server, error) {
	ports, err := freePorts(1 + sentinelCount)
	if err != nil {
		return nil, err
	}
	addrs := make([]string, len(ports))
	for i, p := range ports {
		addrs[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	}
	master, sentinels := addrs[0], addrs[1:]

	cmds := [][]string{append([]string{"--port", strconv.Itoa(ports[0]), "--bind", "127.0.0.1"}, redisCommonArgs...)}
	for _, p := range ports[1:] {
		cmds = append(cmds, []string{sentinelConfPath, "--sentinel", "--port", strconv.Itoa(p), "--bind", "127.0.0.1"})
	}
	s := &Server{Addr: sentinels[0], Addrs: sentinels}
	fail, err := startHostGroup(ctx, "redis sentinel", image, cmds, s)
	if err != nil {
		return nil, err
	}
	s.URL = sentinelURL(SentinelMasterName, sentinels)

	rctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	for _, a := range addrs {
		if err := waitReady(rctx, "redis "+a, s.Containers, func(ctx context.Context) error { return probeRedis(ctx, a) }); err != nil {
			return fail(err)
		}
	}
	// At run time rather than in the configuration: Sentinel writes the
	// monitor line into its file, and a second one there would stop it from
	// starting again after Stop.
	host, port, _ := net.SplitHostPort(master)
	for _, a := range sentinels {
		if _, err := respCommand(rctx, a, "SENTINEL", "MONITOR", SentinelMasterName, host, port, strconv.Itoa(sentinelQuorum)); err != nil {
			return fail(fmt.Errorf("SENTINEL MONITOR on %s: %w", a, err))
		}
	}

	s.ready = func(ctx context.Context) error {
		if err := waitReady(ctx, "redis master "+master, s.Containers, func(ctx context.Context) error { return probeRedis(ctx, master) }); err != nil {
			return err
		}
		for _, a := range sentinels {
			if err := waitReady(ctx, "redis sentinel "+a, s.Containers, func(ctx context.Context) error { return sentinelOK(ctx, a, master) }); err != nil {
				return err
			}
		}
		return nil
	}
	if err := s.ready(rctx); err != nil {
		return fail(err)
	}
	return s, nil
}

// sentinelOK tells whether the Sentinel at addr hands out master as
// SentinelMasterName's address and sees it up. It reads INFO sentinel
// rather than SENTINEL GET-MASTER-ADDR-BY-NAME because INFO's bulk string
// is a reply respCommand reads (it reads no arrays), and it adds the
// status, which turns from "ok" once the Sentinel has not heard from the
// master for down-after-milliseconds.
func sentinelOK(ctx context.Context, addr, master string) error {
	info, err := respCommand(ctx, addr, "INFO", "sentinel")
	if err != nil {
		return err
	}
	want := "name=" + SentinelMasterName + ",status=ok,address=" + master + ","
	if !strings.Contains(info, want) {
		return fmt.Errorf("%s: want %q in INFO sentinel, got %q", addr, want, strings.TrimSpace(info))
	}
	return nil
}

// sentinelURL is the URL of a Sentinel group in ParseFailoverURL's form:
// the first Sentinel as host, the others as addr parameters.
func sentinelURL(masterName string, sentinels []string) string {
	q := []string{"master_name=" + url.QueryEscape(masterName)}
	for _, a := range sentinels[1:] {
		// Unescaped: "%3A" in place of the colon reads badly in logs,
		// and go-redis takes the colon as it is.
		q = append(q, "addr="+a)
	}
	return "redis://" + sentinels[0] + "/0?" + strings.Join(q, "&")
}

// redisSentinelFromEnv returns the external Sentinel group named by
// EnvRedisSentinelURL, or nil.
func redisSentinelFromEnv() (*Server, error) {
	raw := getenv(EnvRedisSentinelURL)
	if raw == "" {
		return nil, nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Query().Get("master_name") == "" {
		return nil, envError(EnvRedisSentinelURL, raw, "want redis://host:port/db?master_name=NAME&addr=host:port")
	}
	return externalServer(raw, append([]string{u.Host}, u.Query()["addr"]...)...), nil
}

// startHostGroup runs one container per command from image, in the host's
// network namespace, and sets them as s's Containers in that order (the
// first is s.Container). They start side by side: most of a start is
// Docker's work, not the CPU's. fail, for this step and the caller's later
// ones, removes the containers and returns err with their output, where a
// server that exited at once says why. startRedisCluster does the same
// inline and could use it.
func startHostGroup(ctx context.Context, name, image string, cmds [][]string, s *Server) (fail func(error) (*Server, error), err error) {
	cs := make([]testcontainers.Container, len(cmds))
	errs := make([]error, len(cmds))
	var wg sync.WaitGroup
	for i, cmd := range cmds {
		wg.Go(func() {
			cs[i], errs[i] = runContainer(ctx, containerSpec{image: image, hostNetwork: true, cmd: cmd})
		})
	}
	wg.Wait()
	for _, c := range cs {
		if c != nil {
			s.Containers = append(s.Containers, c)
		}
	}
	if cs[0] != nil {
		s.Container = cs[0]
	}
	fail = func(err error) (*Server, error) {
		var logs []string
		for _, c := range s.Containers {
			logs = append(logs, containerLogs(context.WithoutCancel(ctx), c))
		}
		_ = s.Terminate(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("%s: %w; container output:\n%s", name, err, strings.Join(logs, "\n---\n"))
	}
	if err := errors.Join(errs...); err != nil {
		_, err = fail(err)
		return nil, err
	}
	return fail, nil
}
