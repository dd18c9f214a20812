package integration_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/credentials/credentialstest"
	"github.com/tokencache/tokencache/integration/servers"
	"github.com/tokencache/tokencache/oauthtest"
)

// TestServerRestart stops the store's server while a refresh is at the
// token endpoint, after the server rotated the refresh token, and starts it
// again. The replica that refreshed keeps serving its new token and writes
// the rotated refresh token once the store is back; another replica gets a
// typed "unavailable" error meanwhile, and afterwards adopts the token
// without a reuse detection.
func TestServerRestart(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func(context.Context) (*servers.Server, error)
		url   func(*servers.Server) string
	}{
		{"redis", servers.StartRedis, func(s *servers.Server) string { return s.URL }},
		// The driver's server selection otherwise waits 30 s for a server.
		{"mongo", servers.StartFerretDB, func(s *servers.Server) string { return s.URL + "?serverSelectionTimeoutMS=1500" }},
		// Unlike the others, PostgreSQL keeps its data across the restart.
		{"postgres", servers.StartPostgres, func(s *servers.Server) string { return s.URL + "&connect_timeout=2" }},
		{"dynamodb", servers.StartDynamoDB, dynamoURL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			srv, err := tc.start(ctx)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			t.Cleanup(func() { srv.Terminate(context.Background()) })
			restart(t, srv, tc.url(srv))
		})
	}
}

// stopper is a store's server that a test can stop and start again: a
// *servers.Server or a *servers.EtcdCluster.
type stopper interface {
	Stop(context.Context) error
	Start(context.Context) error
}

func restart(t *testing.T, srv stopper, storeURL string) {
	ctx := context.Background()
	tokens := oauthtest.NewServer(oauthtest.Options{Rotate: true})
	defer tokens.Close()
	tokens.AddClient("storm-client", "storm-secret")
	open := opener(storeURL)
	credentialstest.Seed(t, open(t), "p", tokens)
	replica := func() *credentials.Credentials {
		// The refresh timeout outlasts the server's stop, which takes a few
		// seconds while the refresh is held at the token endpoint.
		c, err := credentials.New(credentials.Config{Store: open(t), Profile: "p", LeaseTTL: 40 * time.Second,
			RefreshTimeout: 30 * time.Second, RetryBackoff: 50 * time.Millisecond, PollInterval: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b := replica(), replica()
	first, err := a.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}

	hold := tokens.HoldRefreshes(oauthtest.AfterRotate)
	refreshed := make(chan error, 1)
	var second *credentials.Token
	go func() {
		var err error
		second, err = a.Refresh(ctx, first)
		refreshed <- err
	}()
	<-hold.Arrived()
	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	hold.Release()
	if err := <-refreshed; err != nil {
		t.Fatalf("the refresher lost its token to the outage: %v", err)
	}
	if !tokens.Valid(second.AccessToken.Reveal()) {
		t.Fatal("refreshed token not valid")
	}
	// The other replica cannot read the store: a typed error, no panic.
	if _, err := b.Refresh(ctx, nil); !errors.Is(err, credentials.ErrStoreUnavailable) {
		t.Fatalf("replica during the outage: got %v, want ErrStoreUnavailable", err)
	}

	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	st := open(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		rec, _, err := st.Load(ctx, "p")
		if err == nil && rec.AccessToken == second.AccessToken {
			if !tokens.ValidRefresh(rec.RefreshToken.Reveal()) || rec.ClientID == "" {
				t.Fatal("the record written after the restart lacks the rotated refresh token")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rotated refresh token not written within 30 s of the restart (last: %v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	got, err := b.Token(ctx)
	if err != nil || got.AccessToken != second.AccessToken {
		t.Fatalf("replica after the restart: %v", err)
	}
	// And the refresh token works: the next refresh rotates it cleanly.
	if _, err := b.Refresh(ctx, got); err != nil {
		t.Fatalf("refresh after the restart: %v", err)
	}
	if s := tokens.Stats(); s.ReuseDetections != 0 {
		t.Fatalf("%d reuse detections", s.ReuseDetections)
	}
}
