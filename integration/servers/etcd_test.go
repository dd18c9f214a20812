package servers_test

import (
	"context"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tokencache/tokencache/integration/servers"
)

// TestEtcdCluster: three members that agree on a leader; killing the
// leader elects another and keeps the data; the whole cluster stopped and
// started again keeps what it acknowledged.
func TestEtcdCluster(t *testing.T) {
	servers.SkipShort(t)
	t.Parallel()
	ctx := testContext(t)
	c, err := servers.StartEtcdCluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Terminate(context.Background())
	if len(c.Endpoints) != 3 || c.Members() != 3 {
		t.Fatalf("Endpoints = %v, %d members; want 3", c.Endpoints, c.Members())
	}
	client, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := client.Put(ctx, "k", "before"); err != nil {
		t.Fatalf("Put: %v", err)
	}

	old, err := c.KillLeader(ctx)
	if err != nil {
		t.Fatalf("KillLeader: %v", err)
	}
	// Reads go through once the other two have elected a leader.
	resp, err := client.Get(ctx, "k")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "before" {
		t.Fatalf("Get after killing the leader: %v %v", resp, err)
	}
	now, err := c.Leader(ctx)
	if err != nil || now == old {
		t.Fatalf("leader after killing member %d: %d, %v", old, now, err)
	}
	if err := c.StartMember(ctx, old); err != nil {
		t.Fatalf("StartMember: %v", err)
	}

	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	resp, err = client.Get(ctx, "k")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "before" {
		t.Fatalf("Get after a restart of every member: %v %v", resp, err)
	}
}
