package servers_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/bradfitz/gomemcache/memcache"
	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tokencache/tokencache/integration/servers"
)

// The servers start in parallel: on two cores most of a start is waiting on
// Docker, so running them side by side shortens the package a lot.

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestRedis(t *testing.T) {
	t.Parallel()
	srv := servers.Redis(t)
	ctx := testContext(t)

	opts, err := redis.ParseURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	// No retries, so a request to the stopped server fails at once.
	opts.MaxRetries = -1
	client := redis.NewClient(opts)
	defer client.Close()
	if err := client.Set(ctx, "k", "before", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}

	if srv.External() {
		t.Log("external server: not stopping it")
		return
	}
	if err := srv.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := client.Ping(ctx).Err(); err == nil {
		t.Fatal("PING succeeded while the server was stopped")
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	// The same client, hence the same URL, reaches the restarted server.
	if err := client.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after restart: %v", err)
	}
	// Nothing is persisted: a restart is an empty server.
	if err := client.Get(ctx, "k").Err(); err != redis.Nil {
		t.Fatalf("GET after restart: %v, want redis.Nil", err)
	}
}

func TestRedisCluster(t *testing.T) {
	t.Parallel()
	srv := servers.RedisCluster(t)
	ctx := testContext(t)

	if len(srv.Addrs) != 3 {
		t.Fatalf("Addrs = %v, want 3 nodes", srv.Addrs)
	}
	opts, err := redis.ParseClusterURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClusterClient(opts)
	defer client.Close()

	// Keys spread over many slots, hence over all three masters.
	masters := map[string]bool{}
	for i := range 30 {
		key := fmt.Sprintf("key-%d", i)
		if err := client.Set(ctx, key, i, 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", key, err)
		}
		got, err := client.Get(ctx, key).Int()
		if err != nil || got != i {
			t.Fatalf("GET %s = %d, %v; want %d", key, got, err, i)
		}
		node, err := client.MasterForKey(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		masters[node.Options().Addr] = true
	}
	if len(masters) != 3 {
		t.Fatalf("keys landed on masters %v, want all 3", masters)
	}

	if srv.External() {
		return
	}
	// A restarted cluster keeps its addresses and slots (not its data).
	restartThenSet(t, ctx, srv, client)
	err = client.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		return c.Ping(ctx).Err()
	})
	if err != nil {
		t.Fatalf("PING masters after restart: %v", err)
	}
}

func TestRedisSentinel(t *testing.T) {
	t.Parallel()
	srv := servers.RedisSentinel(t)
	ctx := testContext(t)

	opts, err := redis.ParseFailoverURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if opts.MasterName != servers.SentinelMasterName && !srv.External() {
		t.Fatalf("URL %s names master %q, want %q", srv.URL, opts.MasterName, servers.SentinelMasterName)
	}
	client := redis.NewFailoverClient(opts)
	defer client.Close()
	if err := client.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if got, err := client.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("GET = %q, %v; want v", got, err)
	}

	// Every Sentinel, not only the first, must know the master: the
	// client tries them in turn.
	for _, a := range srv.Addrs {
		sc := redis.NewSentinelClient(&redis.Options{Addr: a})
		addr, err := sc.GetMasterAddrByName(ctx, opts.MasterName).Result()
		sc.Close()
		if err != nil {
			t.Fatalf("sentinel %s: GET-MASTER-ADDR-BY-NAME: %v", a, err)
		}
		if addr[0] != "127.0.0.1" && !srv.External() {
			t.Fatalf("sentinel %s hands out master %v, want one on 127.0.0.1", a, addr)
		}
	}

	if srv.External() {
		return
	}
	// The master keeps its address across a restart, and the Sentinels
	// keep watching it.
	restartThenSet(t, ctx, srv, client)
}

// restartThenSet stops and starts srv, then writes through client, which
// was made before the restart: the URL it came from must still lead to a
// server that takes writes.
func restartThenSet(t *testing.T, ctx context.Context, srv *servers.Server, client redis.UniversalClient) {
	t.Helper()
	if err := srv.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := client.Set(ctx, "after-restart", 1, 0).Err(); err != nil {
		t.Fatalf("SET after restart: %v", err)
	}
}

func TestMemcached(t *testing.T) {
	t.Parallel()
	srv := servers.Memcached(t)

	mc := memcache.New(srv.Addr)
	if err := mc.Set(&memcache.Item{Key: "k", Value: []byte("v")}); err != nil {
		t.Fatalf("Set: %v", err)
	}
	it, err := mc.Get("k")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if string(it.Value) != "v" {
		t.Fatalf("Get = %q, want v", it.Value)
	}
}

func TestFerretDB(t *testing.T) {
	t.Parallel()
	srv := servers.FerretDB(t)
	ctx := testContext(t)

	client, err := mongo.Connect(options.Client().ApplyURI(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(context.WithoutCancel(ctx))
	coll := client.Database("servers_test").Collection("tokens")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "a"}, {Key: "n", Value: 1}}); err != nil {
		t.Fatalf("InsertOne: %v", err)
	}
	var got struct {
		ID string `bson:"_id"`
		N  int    `bson:"n"`
	}
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "a"}}).Decode(&got); err != nil {
		t.Fatalf("FindOne: %v", err)
	}
	if got.ID != "a" || got.N != 1 {
		t.Fatalf("FindOne = %+v", got)
	}
}

func TestLocalKMS(t *testing.T) {
	t.Parallel()
	srv := servers.LocalKMS(t)
	ctx := testContext(t)

	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithRegion(servers.LocalKMSRegion),
		// local-kms checks no signatures, but the SDK signs every request
		// and must not go looking for real credentials.
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")),
	)
	if err != nil {
		t.Fatal(err)
	}
	client := kms.NewFromConfig(cfg, func(o *kms.Options) {
		o.BaseEndpoint = aws.String(srv.URL)
	})

	key, err := client.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("servers_test")})
	if err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	dk, err := client.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{
		KeyId:   key.KeyMetadata.KeyId,
		KeySpec: kmstypes.DataKeySpecAes256,
	})
	if err != nil {
		t.Fatalf("GenerateDataKey: %v", err)
	}
	if len(dk.Plaintext) != 32 {
		t.Fatalf("data key has %d bytes, want 32", len(dk.Plaintext))
	}
	dec, err := client.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: dk.CiphertextBlob})
	if err != nil {
		t.Fatalf("Decrypt: %v", err)
	}
	if !bytes.Equal(dec.Plaintext, dk.Plaintext) {
		t.Fatal("Decrypt did not return the data key")
	}
	if aws.ToString(dec.KeyId) != aws.ToString(key.KeyMetadata.Arn) {
		t.Fatalf("Decrypt KeyId = %s, want %s", aws.ToString(dec.KeyId), aws.ToString(key.KeyMetadata.Arn))
	}
}

// TestExternal checks that an environment variable replaces the container.
// Nothing listens on the address: the helpers do not dial external servers.
func TestExternal(t *testing.T) {
	t.Setenv("TOKENCACHE_TEST_MEMCACHED_ADDR", "127.0.0.1:1")
	srv := servers.Memcached(t)
	if !srv.External() || srv.Addr != "127.0.0.1:1" || srv.URL != "memcached://127.0.0.1:1" {
		t.Fatalf("got %+v", srv)
	}
	if err := srv.Stop(t.Context()); err != servers.ErrExternal {
		t.Fatalf("Stop = %v, want ErrExternal", err)
	}
}
