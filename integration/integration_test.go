// Package integration runs the refresh protocol against real servers in
// containers: the storm (replicas x goroutines x expiries, one refresh per
// expiry, no reuse detection) on every networked store, across processes,
// and a store that stops and starts again in the middle of a run.
//
// Servers come from integration/servers: locally built containers, or
// existing servers named by TOKENCACHE_TEST_* environment variables. A
// server that cannot be had fails the test; nothing is skipped.
package integration_test

import (
	"context"
	"crypto/rand"
	"net/url"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awscreds "github.com/aws/aws-sdk-go-v2/credentials"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/tokencache/tokencache/credentials/credentialstest"
	"github.com/tokencache/tokencache/integration/servers"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
	_ "github.com/tokencache/tokencache/storage/dynamodb"
	_ "github.com/tokencache/tokencache/storage/etcd"
	_ "github.com/tokencache/tokencache/storage/kms"
	_ "github.com/tokencache/tokencache/storage/memcached"
	_ "github.com/tokencache/tokencache/storage/mongo"
	_ "github.com/tokencache/tokencache/storage/postgres"
	_ "github.com/tokencache/tokencache/storage/redis"
)

func TestMain(m *testing.M) {
	// local-kms checks no signatures, but the AWS SDK wants credentials;
	// store URLs take them from the environment, as in production.
	for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_EC2_METADATA_DISABLED": "true"} {
		if os.Getenv(k) == "" {
			os.Setenv(k, v)
		}
	}
	// Recovery journal entries of these tests stay out of the user's home.
	journal, err := os.MkdirTemp("", "tokencache-journal-")
	if err != nil {
		panic(err)
	}
	os.Setenv("TOKENCACHE_JOURNAL_DIR", journal)
	code := m.Run()
	os.RemoveAll(journal)
	for _, s := range []*servers.Shared{redisServer, clusterServer, sentinelServer, memcachedServer, mongoServer, kmsServer, postgresServer, dynamoServer} {
		s.Terminate()
	}
	etcdServer.Terminate()
	os.Exit(code)
}

// One server of each kind serves every test of the binary; TestServerRestart
// starts its own, since it stops them.
var (
	redisServer     = servers.SharedRedis()
	clusterServer   = servers.SharedRedisCluster()
	sentinelServer  = servers.SharedRedisSentinel()
	memcachedServer = servers.SharedMemcached()
	mongoServer     = servers.SharedFerretDB()
	kmsServer       = servers.SharedLocalKMS()
	etcdServer      = servers.SharedEtcd()
	postgresServer  = servers.SharedPostgres()
	dynamoServer    = servers.SharedDynamoDB()
)

// backend names a store URL built on a server started for the test.
type backend struct {
	name string
	url  func(t *testing.T) string
}

var backends = []backend{
	{"redis", func(t *testing.T) string { return redisServer.Get(t).URL }},
	{"redis-cluster", func(t *testing.T) string { return clusterServer.Get(t).URL }},
	{"redis-sentinel", func(t *testing.T) string { return sentinelServer.Get(t).URL }},
	{"memcached", func(t *testing.T) string { return memcachedServer.Get(t).URL }},
	{"mongo", func(t *testing.T) string { return mongoServer.Get(t).URL }},
	{"kms+redis", func(t *testing.T) string { return kmsURL(t, redisServer.Get(t).URL) }},
	{"etcd", func(t *testing.T) string { return etcdServer.Get(t).URL }},
	{"kms+etcd", func(t *testing.T) string { return kmsURL(t, etcdServer.Get(t).URL) }},
	{"postgres", func(t *testing.T) string { return postgresServer.Get(t).URL }},
	{"kms+postgres", func(t *testing.T) string { return kmsURL(t, postgresServer.Get(t).URL) }},
	{"dynamodb", func(t *testing.T) string { return dynamoURL(dynamoServer.Get(t)) }},
	{"kms+dynamodb", func(t *testing.T) string { return kmsURL(t, dynamoURL(dynamoServer.Get(t))) }},
}

// dynamoURL is a store URL for a new table on a DynamoDB endpoint.
func dynamoURL(s *servers.Server) string {
	q := url.Values{"region": {servers.DynamoDBRegion}, "endpoint": {s.URL}, "create_table": {"true"}}
	return "dynamodb://tokencache-" + rand.Text()[:8] + "?" + q.Encode()
}

// kmsURL wraps a store URL in KMS envelope encryption under a new key of a
// local-kms server.
func kmsURL(t *testing.T, inner string) string {
	t.Helper()
	endpoint := kmsServer.Get(t).URL
	c := awskms.New(awskms.Options{Region: servers.LocalKMSRegion, BaseEndpoint: aws.String(endpoint),
		Credentials: awscreds.NewStaticCredentialsProvider("test", "test", "")})
	out, err := c.CreateKey(context.Background(), &awskms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse("kms+" + inner)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("kms_key_id", aws.ToString(out.KeyMetadata.Arn))
	q.Set("kms_endpoint", endpoint)
	q.Set("kms_region", servers.LocalKMSRegion)
	u.RawQuery = q.Encode()
	return u.String()
}

func opener(u string) func(t testing.TB) *storage.Store {
	return func(t testing.TB) *storage.Store {
		st, err := storage.Open(context.Background(), u)
		if err != nil {
			t.Fatalf("open %s: %v", secret.RedactURL(u), err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
}

// TestStorm: 8 replicas, each with its own connection, x 100 goroutines,
// 200 ms endpoint latency, rotation and reuse detection on, 5 expiries:
// exactly 5 refresh calls and no reuse detection on every store.
func TestStorm(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			credentialstest.Storm(t, opener(b.url(t)), credentialstest.StormOptions{})
		})
	}
}

// TestStormProcesses is the storm with each replica an OS process.
func TestStormProcesses(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			if credentialstest.InChild() {
				credentialstest.StormProcesses(t, "", 0, credentialstest.StormOptions{})
				return
			}
			credentialstest.StormProcesses(t, b.url(t), 4, credentialstest.StormOptions{Goroutines: 50, Expiries: 3})
		})
	}
}
