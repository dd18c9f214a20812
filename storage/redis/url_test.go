package redis_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/redis"
)

func TestOpenURLForms(t *testing.T) {
	cases := []struct {
		url     string
		kind    string // "single", "cluster", "failover"
		prefix  string
		wantErr bool
	}{
		{url: "redis://localhost:6379/0", kind: "single", prefix: redis.DefaultPrefix},
		{url: "rediss://u:pw@localhost:6380/2?prefix=tc:", kind: "single", prefix: "tc:"},
		{url: "redis://h1:7000,h2:7001,h3:7002/?cluster=true", kind: "cluster", prefix: redis.DefaultPrefix},
		{url: "redis://h1:7000,h2:7001", kind: "cluster", prefix: redis.DefaultPrefix},
		{url: "redis://h1:7000/?addr=h2:7001&addr=h3:7002", kind: "cluster", prefix: redis.DefaultPrefix},
		{url: "redis://h1:7000/?cluster", kind: "cluster", prefix: redis.DefaultPrefix},
		{url: "redis://s1:26379,s2:26379/0?master_name=mymaster&prefix=x:", kind: "failover", prefix: "x:"},
		{url: "redis://h1:7000/3?cluster=true", wantErr: true},
		{url: "redis://h1:7000/?cluster=maybe", wantErr: true},
		{url: "redis://h1:7000/?no_such_option=1", wantErr: true},
		{url: "redis://s1:26379/?master_name=m&cluster=true", wantErr: true},
		{url: "redis://h1:7000,,h2:7001/", wantErr: true},
	}
	for _, c := range cases {
		t.Run(c.url, func(t *testing.T) {
			u, err := url.Parse(c.url)
			if err != nil {
				t.Fatal(err)
			}
			client, opts, err := redis.NewClientFromURL(u)
			if c.wantErr {
				if !errors.Is(err, driver.ErrInvalid) {
					t.Fatalf("err = %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			if opts.Prefix != c.prefix {
				t.Errorf("prefix %q, want %q", opts.Prefix, c.prefix)
			}
			var kind string
			switch cl := client.(type) {
			case *goredis.ClusterClient:
				kind = "cluster"
				if got := len(cl.Options().Addrs); strings.Count(c.url, ":7") != got {
					t.Errorf("cluster has %d addresses: %q", got, cl.Options().Addrs)
				}
			case *goredis.Client:
				kind = "single"
				if strings.Contains(c.url, "master_name") {
					kind = "failover"
				}
			default:
				t.Fatalf("client %T", client)
			}
			if kind != c.kind {
				t.Errorf("made a %s client, want %s", kind, c.kind)
			}
		})
	}
}

func TestErrorsHidePassword(t *testing.T) {
	const pw = "hunter2-very-secret"
	for _, raw := range []string{
		"redis://user:" + pw + "@127.0.0.1:1/0?dial_timeout=200ms",
		"redis://user:" + pw + "@127.0.0.1:1/0?bad_option=" + pw,
		"redis://127.0.0.1:1/0?dial_timeout=200ms&db=x" + pw,
		"redis://s1:1/0?master_name=m&password=" + pw + "&dial_timeout=nope",
	} {
		a, err := driver.Open(context.Background(), raw)
		if err != nil {
			if strings.Contains(err.Error(), pw) {
				t.Fatalf("Open error leaks the password: %v", err)
			}
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, _, err = a.Get(ctx, "p")
		cancel()
		a.Close()
		if !errors.Is(err, driver.ErrUnavailable) {
			t.Fatalf("Get from a closed port: %v, want ErrUnavailable", err)
		}
		if strings.Contains(err.Error(), pw) {
			t.Fatalf("error leaks the password: %v", err)
		}
	}
}
