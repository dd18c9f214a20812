package servers

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Environment variables naming existing Redis servers to use instead of
// containers.
const (
	EnvRedisURL        = "TOKENCACHE_TEST_REDIS_URL"
	EnvRedisClusterURL = "TOKENCACHE_TEST_REDIS_CLUSTER_URL"
)

// redisFiles are Debian's redis-server binary and the libraries it needs,
// for a FROM scratch image.
func redisFiles() ([]imageFile, error) {
	bin, err := lookBinary("redis-server", "redis-server")
	if err != nil {
		return nil, err
	}
	return nativeFiles(bin, "/usr/bin/redis-server")
}

func redisImage(ctx context.Context) (string, error) {
	files, err := redisFiles()
	if err != nil {
		return "", err
	}
	return ensureImage(ctx, imageSpec{
		name:  "redis",
		files: files,
		// Redis writes nodes.conf (cluster mode) into its working
		// directory; WORKDIR creates it.
		tail: []string{"WORKDIR /data", `ENTRYPOINT ["/usr/bin/redis-server"]`},
	})
}

// Settings shared by every node: these servers hold test data only, so
// nothing is written to disk.
var redisCommonArgs = []string{"--save", "", "--appendonly", "no"}

// StartRedis starts a single Redis server in a container. Its URL is
// "redis://127.0.0.1:PORT/0" and its Addr "127.0.0.1:PORT".
func StartRedis(ctx context.Context) (*Server, error) { return StartRedisArgs(ctx) }

// StartRedisArgs is StartRedis with extra redis-server arguments, for tests
// that need a server configured otherwise; say, "--rename-command",
// "SPUBLISH", "" to play a server older than Redis 7.
func StartRedisArgs(ctx context.Context, extra ...string) (*Server, error) {
	image, err := redisImage(ctx)
	if err != nil {
		return nil, err
	}
	return startSingle(ctx, "redis", containerSpec{
		image:         image,
		containerPort: "6379/tcp",
		// Docker's port proxy connects from the bridge's address, which
		// protected mode would refuse; the port is published on
		// 127.0.0.1 only.
		cmd: slices.Concat([]string{"--port", "6379", "--bind", "0.0.0.0", "--protected-mode", "no"}, redisCommonArgs, extra),
	}, probeRedis, func(addr string) string { return "redis://" + addr + "/0" })
}

// StartRedisCluster starts a Redis cluster of three masters (no replicas),
// one container each, with the 16384 slots split evenly, and returns once
// every node reports cluster_state:ok.
//
// Its Addrs are the three nodes' "127.0.0.1:PORT". Its URL is
// "redis://127.0.0.1:P1?addr=127.0.0.1:P2&addr=127.0.0.1:P3", the form that
// go-redis's ParseClusterURL reads; Addrs suits redis.ClusterOptions or
// UniversalOptions directly.
//
// The nodes run in the host's network namespace, bound to 127.0.0.1: a
// cluster node tells clients and other nodes its own address, so the address
// it listens on must be the one both can reach. Stop stops all three nodes;
// Start brings them back with their slots (nodes.conf survives in the
// stopped containers).
func StartRedisCluster(ctx context.Context) (*Server, error) {
	image, err := redisImage(ctx)
	if err != nil {
		return nil, err
	}
	setDockerEnv()
	return startWithRetry(ctx, func(ctx context.Context) (*Server, error) {
		return startRedisCluster(ctx, image)
	})
}

const clusterNodes = 3

func startRedisCluster(ctx context.Context, image string) (*Server, error) {
	// A client port and a cluster bus port per node. The bus port is set
	// explicitly, since the default (client port + 10000) may be taken or
	// past 65535.
	ports, err := freePorts(2 * clusterNodes)
	if err != nil {
		return nil, err
	}
	addrs := make([]string, clusterNodes)
	for i := range clusterNodes {
		addrs[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[i]))
	}

	cmds := make([][]string, clusterNodes)
	for i := range clusterNodes {
		cmds[i] = append([]string{
			"--port", strconv.Itoa(ports[i]),
			"--bind", "127.0.0.1",
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-port", strconv.Itoa(ports[clusterNodes+i]),
			"--cluster-announce-ip", "127.0.0.1",
			// Quick failure detection keeps Stop/Start tests short.
			"--cluster-node-timeout", "2000",
		}, redisCommonArgs...)
	}
	s := &Server{Addr: addrs[0], Addrs: addrs}
	fail, err := startHostGroup(ctx, "redis cluster", image, cmds, s)
	if err != nil {
		return nil, err
	}

	q := url.Values{}
	for _, a := range addrs[1:] {
		q.Add("addr", a)
	}
	s.URL = "redis://" + addrs[0] + "?" + q.Encode()
	// url.Values escapes the colon; go-redis unescapes it, but a readable
	// URL is nicer in logs.
	s.URL = strings.ReplaceAll(s.URL, "%3A", ":")

	rctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	for _, a := range addrs {
		if err := waitReady(rctx, "redis node "+a, s.Containers, func(ctx context.Context) error { return probeRedis(ctx, a) }); err != nil {
			return fail(err)
		}
	}

	// What redis-cli --cluster create does, minus replicas: give each
	// node a third of the slots, then introduce the nodes to the first.
	const slots = 16384
	for i, a := range addrs {
		first, last := i*slots/clusterNodes, (i+1)*slots/clusterNodes-1
		if _, err := respCommand(rctx, a, "CLUSTER", "ADDSLOTSRANGE", strconv.Itoa(first), strconv.Itoa(last)); err != nil {
			return fail(fmt.Errorf("ADDSLOTSRANGE on %s: %w", a, err))
		}
		// Distinct config epochs, so that the nodes need not resolve
		// a collision before they agree.
		if _, err := respCommand(rctx, a, "CLUSTER", "SET-CONFIG-EPOCH", strconv.Itoa(i+1)); err != nil {
			return fail(fmt.Errorf("SET-CONFIG-EPOCH on %s: %w", a, err))
		}
	}
	for i := 1; i < clusterNodes; i++ {
		if _, err := respCommand(rctx, addrs[0], "CLUSTER", "MEET", "127.0.0.1", strconv.Itoa(ports[i]), strconv.Itoa(ports[clusterNodes+i])); err != nil {
			return fail(fmt.Errorf("CLUSTER MEET: %w", err))
		}
	}

	s.ready = func(ctx context.Context) error {
		for _, a := range addrs {
			if err := waitReady(ctx, "redis cluster node "+a, s.Containers, func(ctx context.Context) error { return clusterOK(ctx, a) }); err != nil {
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

// clusterOK tells whether a node sees the whole cluster: every node known,
// every slot served, state ok.
func clusterOK(ctx context.Context, addr string) error {
	info, err := respCommand(ctx, addr, "CLUSTER", "INFO")
	if err != nil {
		return err
	}
	want := []string{
		"cluster_state:ok",
		"cluster_slots_assigned:16384",
		"cluster_slots_ok:16384",
		"cluster_known_nodes:" + strconv.Itoa(clusterNodes),
	}
	for _, w := range want {
		if !strings.Contains(info, w+"\r\n") {
			return fmt.Errorf("%s: want %s in CLUSTER INFO", addr, w)
		}
	}
	return nil
}

// redisFromEnv returns the external single Redis named by EnvRedisURL, or
// nil.
func redisFromEnv() (*Server, error) {
	raw := getenv(EnvRedisURL)
	if raw == "" {
		return nil, nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, envError(EnvRedisURL, raw, "want redis://host:port/db")
	}
	return externalServer(raw, u.Host), nil
}

// redisClusterFromEnv returns the external cluster named by
// EnvRedisClusterURL, or nil.
func redisClusterFromEnv() (*Server, error) {
	raw := getenv(EnvRedisClusterURL)
	if raw == "" {
		return nil, nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, envError(EnvRedisClusterURL, raw, "want redis://host:port?addr=host:port&addr=host:port")
	}
	return externalServer(raw, append([]string{u.Host}, u.Query()["addr"]...)...), nil
}
