package dynamodb_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/dynamodb"
)

func TestOpenURLForms(t *testing.T) {
	cases := []struct {
		url     string
		table   string
		prefix  string
		wantErr bool
	}{
		{url: "dynamodb://tokens", table: "tokens"},
		{url: "dynamodb:///tokens?region=eu-west-1&prefix=app1", table: "tokens", prefix: "app1"},
		{url: "dynamodb://my_table.v2?endpoint=http://127.0.0.1:8000&create_table=false", table: "my_table.v2"},
		{url: "dynamodb://tokens?prefix=", table: "tokens"},
		{url: "dynamodb://ab", wantErr: true},
		{url: "dynamodb://tokens/extra", wantErr: true},
		{url: "dynamodb://tokens?endpoint=127.0.0.1:8000", wantErr: true},
		{url: "dynamodb://tokens?endpoint=http://dynamo.internal:8000", wantErr: true},
		{url: "dynamodb://tokens?endpoint=https://dynamo.internal:8000", table: "tokens"},
		{url: "dynamodb://tokens?endpoint=http://localhost:8000", table: "tokens"},
		{url: "dynamodb://tokens?create_table=maybe", wantErr: true},
		{url: "dynamodb://tokens?secret_key=sekritvalue", wantErr: true},
		{url: "dynamodb://AKIA:sekritvalue@tokens", wantErr: true},
	}
	for _, c := range cases {
		t.Run(c.url, func(t *testing.T) {
			u, err := url.Parse(c.url)
			if err != nil {
				t.Fatal(err)
			}
			o, err := dynamodb.ParseURL(u)
			if c.wantErr {
				if !errors.Is(err, driver.ErrInvalid) {
					t.Fatalf("err = %v, want ErrInvalid", err)
				}
				if strings.Contains(err.Error(), "sekritvalue") {
					t.Fatalf("error repeats a secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.Table != c.table || o.Prefix != c.prefix {
				t.Errorf("table %q prefix %q, want %q %q", o.Table, o.Prefix, c.table, c.prefix)
			}
		})
	}
}

// A write that could not connect changed nothing, and says so
// (driver.ErrNotApplied), so that a caller may put back what it held.
func TestWriteToNoServerNotApplied(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	a, err := driver.Open(context.Background(), "dynamodb://tokens?region=us-east-1&endpoint=http://127.0.0.1:1")
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
