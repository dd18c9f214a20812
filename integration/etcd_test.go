package integration_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tokencache/tokencache/credentials/credentialstest"
	"github.com/tokencache/tokencache/integration/servers"
)

// ownEtcd starts a three-member cluster for a test that kills members; the
// shared one serves the tests that leave it alone.
func ownEtcd(t *testing.T) *servers.EtcdCluster {
	t.Helper()
	servers.SkipShort(t)
	c, err := servers.StartEtcdCluster(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Terminate(context.Background()) })
	return c
}

// TestStormEtcdFailover runs the storm (8 replicas x 100 goroutines, 5
// expiries) on a three-member etcd cluster and kills one member with
// SIGKILL in the middle of it, just before the third refresh is due: first
// a follower, then, in a cluster of its own, the leader, which costs an
// election. The member comes back three seconds later. The storm must
// still see exactly 5 refreshes, no reuse detection and no failed Token
// call: with a majority up, every write the protocol makes either lands
// or is retried by the adapter, and a rotated refresh token that landed is
// never lost (one that were would make the next refresh a reuse).
func TestStormEtcdFailover(t *testing.T) {
	for _, tc := range []struct {
		name string
		kill func(ctx context.Context, c *servers.EtcdCluster) (int, error)
	}{
		{"follower", func(ctx context.Context, c *servers.EtcdCluster) (int, error) {
			leader, err := c.Leader(ctx)
			if err != nil {
				return -1, err
			}
			i := (leader + 1) % c.Members()
			return i, c.KillMember(i)
		}},
		{"leader", func(ctx context.Context, c *servers.EtcdCluster) (int, error) { return c.KillLeader(ctx) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ownEtcd(t)
			ctx := context.Background()
			before, err := c.Leader(ctx)
			if err != nil {
				t.Fatal(err)
			}
			faults := make(chan error, 1)
			finished := make(chan struct{})
			// Before the cluster's own cleanup, also when the storm fails.
			t.Cleanup(func() { <-finished })
			go func() {
				defer close(finished)
				// The storm's tokens live 2 s: the third refresh is due
				// at about 4 s.
				time.Sleep(3900 * time.Millisecond)
				i, err := tc.kill(ctx, c)
				if err != nil {
					faults <- fmt.Errorf("kill: %w", err)
					return
				}
				t.Logf("killed member %d (leader before: %d)", i, before)
				time.Sleep(3 * time.Second)
				if tc.name == "leader" {
					if now, err := c.Leader(ctx); err != nil || now == i {
						faults <- fmt.Errorf("no new leader 3 s after killing member %d: %d, %v", i, now, err)
						return
					}
				}
				faults <- c.StartMember(ctx, i)
			}()
			credentialstest.Storm(t, opener(c.URL), credentialstest.StormOptions{})
			if err := <-faults; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestServerRestartEtcd is TestServerRestart on etcd: every member killed
// while a refresh is held at the token endpoint after the server rotated
// the token, then started again on the same data.
func TestServerRestartEtcd(t *testing.T) {
	c := ownEtcd(t)
	restart(t, c, c.URL)
}
