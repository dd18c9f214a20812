package etcd_test

import (
	"os"
	"testing"

	"github.com/tokencache/tokencache/integration/servers"
)

// The cluster comes from integration/servers, started on first use and
// shared by the whole test binary; TestMain removes it. A cluster that
// cannot be had fails the test, never skips it.
var cluster = servers.SharedEtcd()

func TestMain(m *testing.M) {
	code := m.Run()
	cluster.Terminate()
	os.Exit(code)
}

// etcdURL is "etcd://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/".
func etcdURL(t testing.TB) string { return cluster.Get(t).URL }
