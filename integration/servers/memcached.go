package servers

import (
	"context"
	"net"
)

// EnvMemcachedAddr names an existing memcached (host:port) to use instead of
// a container.
const EnvMemcachedAddr = "TOKENCACHE_TEST_MEMCACHED_ADDR"

// StartMemcached starts memcached in a container. Its Addr is
// "127.0.0.1:PORT", what gomemcache's New takes, and its URL
// "memcached://127.0.0.1:PORT".
func StartMemcached(ctx context.Context) (*Server, error) {
	bin, err := lookBinary("memcached", "memcached")
	if err != nil {
		return nil, err
	}
	files, err := nativeFiles(bin, "/usr/bin/memcached")
	if err != nil {
		return nil, err
	}
	image, err := ensureImage(ctx, imageSpec{
		name:  "memcached",
		files: files,
		// memcached refuses to run as root unless told which user to
		// switch to, and scratch has no /etc/passwd to name one.
		tail: []string{"USER 65534", `ENTRYPOINT ["/usr/bin/memcached"]`},
	})
	if err != nil {
		return nil, err
	}
	return startSingle(ctx, "memcached", containerSpec{
		image:         image,
		containerPort: "11211/tcp",
		// TCP only, 64 MiB, items up to 2 MiB (the storage conformance
		// suite stores values just under 1 MiB, which with memcached's
		// item overhead exceed the default 1 MiB limit), listening on the
		// container's interfaces (the port is published on 127.0.0.1 only).
		cmd: []string{"-p", "11211", "-U", "0", "-m", "64", "-I", "2m", "-l", "0.0.0.0"},
	}, probeMemcached, func(addr string) string { return "memcached://" + addr })
}

func memcachedFromEnv() (*Server, error) {
	addr := getenv(EnvMemcachedAddr)
	if addr == "" {
		return nil, nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, envError(EnvMemcachedAddr, addr, "want host:port")
	}
	return externalServer("memcached://"+addr, addr), nil
}
