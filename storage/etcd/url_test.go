package etcd_test

import (
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/etcd"
)

func TestOpenURLForms(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		url       string
		endpoints []string
		prefix    string
		tls       bool
		timeout   time.Duration
		wantErr   bool
	}{
		{url: "etcd://127.0.0.1:2379", endpoints: []string{"127.0.0.1:2379"}, prefix: etcd.DefaultPrefix},
		{url: "etcd://h1:2379,h2:2380,h3:2381/myapp", endpoints: []string{"h1:2379", "h2:2380", "h3:2381"}, prefix: "myapp/"},
		{url: "etcd://[::1]:2379/", endpoints: []string{"[::1]:2379"}, prefix: etcd.DefaultPrefix},
		{url: "etcd://h1:2379/a/b/", endpoints: []string{"h1:2379"}, prefix: "a/b/"},
		{url: "etcd://h1:2379/?prefix=tc:&timeout=2s", endpoints: []string{"h1:2379"}, prefix: "tc:", timeout: 2 * time.Second},
		{url: "etcds://u:pw@h1:2379/", endpoints: []string{"h1:2379"}, prefix: etcd.DefaultPrefix, tls: true},
		{url: "etcd://h1:2379/?tls=true&server_name=etcd.local", endpoints: []string{"h1:2379"}, prefix: etcd.DefaultPrefix, tls: true},
		{url: "etcd://h1/", wantErr: true},
		{url: "etcd://h1:2379,,h2:2379/", wantErr: true},
		{url: "etcd:///p", wantErr: true},
		{url: "etcd://h1:2379/?no_such_option=1", wantErr: true},
		{url: "etcd://h1:2379/?prefix=", wantErr: true},
		{url: "etcd://h1:2379/?tls=maybe", wantErr: true},
		{url: "etcd://h1:2379/?timeout=-1s", wantErr: true},
		{url: "etcd://u@h1:2379/", wantErr: true},
		{url: "etcd://h1:2379/?ca_file=" + url.QueryEscape(ca), wantErr: true},                    // TLS file without TLS
		{url: "etcds://h1:2379/?ca_file=" + url.QueryEscape(ca), wantErr: true},                   // not PEM
		{url: "etcds://h1:2379/?ca_file=" + url.QueryEscape(ca+".missing"), wantErr: true},        // no such file
		{url: "etcds://h1:2379/?cert_file=" + url.QueryEscape(ca), wantErr: true},                 // no key_file
		{url: "etcds://h1:2379/?cert_file=" + url.QueryEscape(ca) + "&key_file=x", wantErr: true}, // unreadable pair
	}
	for _, c := range cases {
		t.Run(c.url, func(t *testing.T) {
			u, err := url.Parse(c.url)
			if err != nil {
				t.Fatal(err)
			}
			cfg, opts, err := etcd.ConfigFromURL(u)
			if c.wantErr {
				if !errors.Is(err, driver.ErrInvalid) {
					t.Fatalf("err = %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cfg.Endpoints, c.endpoints) {
				t.Errorf("endpoints %q, want %q", cfg.Endpoints, c.endpoints)
			}
			if opts.Prefix != c.prefix {
				t.Errorf("prefix %q, want %q", opts.Prefix, c.prefix)
			}
			if (cfg.TLS != nil) != c.tls {
				t.Errorf("TLS %v, want %v", cfg.TLS != nil, c.tls)
			}
			want := c.timeout
			if want == 0 {
				want = etcd.DefaultTimeout
			}
			if opts.Timeout != want {
				t.Errorf("timeout %v, want %v", opts.Timeout, want)
			}
			if cfg.DialTimeout <= 0 {
				t.Errorf("dial timeout %v: unbounded", cfg.DialTimeout)
			}
		})
	}
}

func TestErrorsHidePassword(t *testing.T) {
	const pw = "hunter2-very-secret"
	for _, raw := range []string{
		"etcd://user:" + pw + "@127.0.0.1:1/?dial_timeout=300ms",
		"etcd://user:" + pw + "@127.0.0.1:1/?bad_option=" + pw,
		"etcd://user:" + pw + "@127.0.0.1:1/?timeout=x" + pw,
		"etcd://user:" + pw + "@127.0.0.1/",
	} {
		_, err := driver.Open(context.Background(), raw)
		if err == nil {
			t.Fatalf("Open(%s) succeeded", secret.RedactURL(raw))
		}
		if strings.Contains(err.Error(), pw) {
			t.Fatalf("Open error leaks the password: %v", err)
		}
		if !errors.Is(err, driver.ErrInvalid) && !errors.Is(err, driver.ErrUnavailable) {
			t.Fatalf("Open(%s): %v, want ErrInvalid or ErrUnavailable", secret.RedactURL(raw), err)
		}
	}
}
