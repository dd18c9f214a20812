// Command etcd is the etcd server, built from go.etcd.io/etcd/server/v3 for
// integration tests: the integration/servers package builds this binary
// with CGO_ENABLED=0 from the Go module proxy and runs three of them as a
// cluster on loopback ports. etcd's own go.mod has replace directives, so
// `go install go.etcd.io/etcd/server/v3@VERSION` refuses to build it; this
// module pins the version instead.
//
// It lives in its own Go module so that the server's dependency tree (raft,
// bbolt, the gRPC gateway, Prometheus, OpenTelemetry) stays out of the main
// module's go.mod.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
