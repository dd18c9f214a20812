// Package servers starts the backing servers that tokencache's integration
// tests need — Redis (single node, a three-master cluster, and a master
// watched by three Sentinels), memcached, a MongoDB wire protocol server
// (FerretDB on SQLite) and a local AWS KMS (nsmithuk/local-kms) — as
// testcontainers-go containers, without any image registry.
//
// # Why images are built here
//
// The machines that run these tests reach no container registry, so every
// image is built locally FROM scratch: Redis and memcached from the binaries
// that Debian's redis-server and memcached packages install, together with the
// shared libraries that ldd lists for them; FerretDB and local-kms from Go
// binaries that this package compiles with CGO_ENABLED=0 from the Go module
// proxy. An image's tag is a hash of everything that goes into it, so an image
// is built once per binary version, reused afterwards, and rebuilt by itself
// when a package upgrade changes the binary. Built Go binaries are cached in
// os.UserCacheDir()/tokencache-servers, keyed by version. Builds are
// serialized across processes with a file lock in that directory, because
// `go test ./...` runs several test binaries at once.
//
// This package belongs to the module github.com/tokencache/tokencache/integration,
// not to tokencache's own, so that testcontainers and the Docker client stay
// out of the go.mod of programs that import tokencache. FerretDB's and
// etcd's sources are Go modules of their own again, in ../ferretdb and
// ../etcd (their large dependency trees stay out of every go.mod the tests
// use); they are found next to this package's source, so StartFerretDB and
// StartEtcdCluster work from a checkout of the repository.
//
// # Using it
//
// In a test, call the helper named after the server; it starts a container
// (or uses an existing server, see below), terminates it when the test ends,
// and fails the test when the server cannot be had:
//
//	func TestStore(t *testing.T) {
//		srv := servers.Redis(t)
//		client := redis.NewClient(&redis.Options{Addr: srv.Addr})
//		...
//	}
//
// Outside a *testing.T, StartRedis, StartRedisCluster, StartRedisSentinel,
// StartMemcached, StartFerretDB and StartLocalKMS do the same and hand the
// cleanup to the caller (Server.Terminate).
//
// Two servers run as processes on this host instead of containers (see
// StartPostgres and StartDynamoDB): PostgreSQL from Debian's postgresql
// package, which refuses to run as root and so runs as the postgres user,
// and dynalite (DynamoDB's API on LevelDB) from npm under Debian's node.
// They listen on 127.0.0.1, die with the test binary, and keep their data
// across Stop and Start.
//
// A missing server is always a failure, never a skip: CI (CI=true) must not
// pass by running nothing.
//
// # Existing servers
//
// Each helper uses an existing server instead of a container when its
// environment variable is set:
//
//	TOKENCACHE_TEST_REDIS_URL           redis://host:port/db
//	TOKENCACHE_TEST_REDIS_CLUSTER_URL   redis://host:port?addr=host:port&addr=host:port
//	TOKENCACHE_TEST_REDIS_SENTINEL_URL  redis://host:port/db?master_name=NAME&addr=host:port
//	TOKENCACHE_TEST_MEMCACHED_ADDR      host:port
//	TOKENCACHE_TEST_MONGO_URI           mongodb://host:port/
//	TOKENCACHE_TEST_KMS_ENDPOINT        http://host:port
//	TOKENCACHE_TEST_ETCD_ENDPOINTS      host:port,host:port,host:port
//	TOKENCACHE_TEST_POSTGRES_URL        postgres://user:password@host:port/dbname
//	TOKENCACHE_TEST_DYNAMODB_ENDPOINT   http://host:port
//
// Such a Server has no container: Stop and Start return ErrExternal, and
// Terminate does nothing. etcd is the exception to containers: see
// EtcdCluster, whose members run as processes. Tests that stop a server on purpose should skip
// that part (or the test) when Server.External reports true.
//
// # Docker
//
// A Docker daemon on this machine must be reachable (the servers are
// reached on 127.0.0.1, and the cluster and the Sentinel group share the
// host's network). Unless
// they are set already, the first
// call sets TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1 (testcontainers-go
// otherwise guesses it runs inside a container and dials the default
// gateway) and TESTCONTAINERS_RYUK_DISABLED=true (the Ryuk reaper image
// cannot be pulled); containers are therefore removed by Terminate, not by a
// reaper. The project's scripts/test.sh installs and starts Docker.
//
// # Addresses
//
// Every server listens on 127.0.0.1 only, on a host port chosen when it
// starts and kept across Stop and Start, so a URL handed out before a
// restart stays valid after it. Single-node servers publish that port from
// the container's own network; the Redis cluster and the Sentinel group use
// the host's network, because cluster nodes hand their own addresses to
// clients and to each other, and Sentinels hand out the master's, and those
// must be the same addresses on both sides.
package servers
