package postgres_test

import (
	"context"
	"errors"
	"net/url"
	"testing"

	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/postgres"
)

func TestOpenURLForms(t *testing.T) {
	cases := []struct {
		url           string
		table, schema string
		maxConns      int32
		tls           bool
		wantErr       bool
	}{
		// pgx's default sslmode is prefer: TLS if the server offers it.
		{url: "postgres://u:pw@localhost:5432/db", table: postgres.DefaultTable, tls: true},
		{url: "postgresql://u@localhost/db?table=t1&schema=s1&sslmode=disable", table: "t1", schema: "s1"},
		{url: "postgres://h1:5432,h2:5433/db?pool_max_conns=7&sslmode=disable", table: postgres.DefaultTable, maxConns: 7},
		{url: "postgres://localhost/db?sslmode=require", table: postgres.DefaultTable, tls: true},
		{url: "postgres://localhost/db?table=bad-name", wantErr: true},
		{url: "postgres://localhost/db?listen=maybe", wantErr: true},
		{url: "postgres://localhost/db?schema=1x", wantErr: true},
		{url: "postgres://localhost/db?pool_max_conns=lots", wantErr: true},
		{url: "postgres://localhost/db?sslmode=sometimes", wantErr: true},
	}
	for _, c := range cases {
		t.Run(c.url, func(t *testing.T) {
			u, err := url.Parse(c.url)
			if err != nil {
				t.Fatal(err)
			}
			cfg, opts, err := postgres.ParseURL(u)
			if err == nil {
				var a driver.Adapter
				a, err = driver.Open(context.Background(), c.url)
				if err == nil {
					a.Close()
				}
			}
			if c.wantErr {
				if !errors.Is(err, driver.ErrInvalid) {
					t.Fatalf("err = %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if opts.Table != c.table && !(c.table == postgres.DefaultTable && opts.Table == "") {
				t.Errorf("table %q, want %q", opts.Table, c.table)
			}
			if opts.Schema != c.schema {
				t.Errorf("schema %q, want %q", opts.Schema, c.schema)
			}
			if _, leaked := cfg.ConnConfig.RuntimeParams["table"]; leaked {
				t.Error("table reached pgx as a run-time parameter")
			}
			if c.maxConns != 0 && cfg.MaxConns != c.maxConns {
				t.Errorf("MaxConns %d, want %d", cfg.MaxConns, c.maxConns)
			}
			if (cfg.ConnConfig.TLSConfig != nil) != c.tls {
				t.Errorf("TLS config %v, want TLS %v", cfg.ConnConfig.TLSConfig != nil, c.tls)
			}
		})
	}
}

// A write that could not reach the server changed nothing, and says so
// (driver.ErrNotApplied), so that a caller may put back what it held.
func TestWriteToNoServerNotApplied(t *testing.T) {
	a, err := driver.Open(context.Background(), "postgres://u:pw@127.0.0.1:1/db?connect_timeout=1&listen=false")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	_, err = a.Put(context.Background(), "p", []byte(`{}`), driver.IfAbsent())
	if !errors.Is(err, driver.ErrUnavailable) || !errors.Is(err, driver.ErrNotApplied) {
		t.Fatalf("Put with no server: %v, want ErrUnavailable and ErrNotApplied", err)
	}
	err = a.Delete(context.Background(), "p", driver.Condition{})
	if !errors.Is(err, driver.ErrUnavailable) || !errors.Is(err, driver.ErrNotApplied) {
		t.Fatalf("Delete with no server: %v, want ErrUnavailable and ErrNotApplied", err)
	}
}
