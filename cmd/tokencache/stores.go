package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/tokencache/tokencache/pancloud"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/file"

	// Each adapter registers its URL scheme with storage.Open; importing
	// it is all the CLI needs to accept its URLs. kms registers
	// kms+<scheme> for the others: envelope encryption around any of them.
	_ "github.com/tokencache/tokencache/storage/dynamodb"
	_ "github.com/tokencache/tokencache/storage/etcd"
	_ "github.com/tokencache/tokencache/storage/kms"
	_ "github.com/tokencache/tokencache/storage/memcached"
	_ "github.com/tokencache/tokencache/storage/memory"
	_ "github.com/tokencache/tokencache/storage/mongo"
	_ "github.com/tokencache/tokencache/storage/postgres"
	_ "github.com/tokencache/tokencache/storage/redis"
	_ "github.com/tokencache/tokencache/storage/sqlite"
)

// defaultStoreURL is the embedded file store at pancloud's path
// ($PAN_CREDENTIALS_DBFILE, else ~/.config/pancloud/credentials.json, as
// package pancloud says), so that tokencache and pancloud share one
// credentials.json out of the box. A relative PAN_CREDENTIALS_DBFILE is
// relative to the working directory, as it is for pancloud.
func defaultStoreURL(getenv func(string) string) (string, error) {
	return pancloud.DefaultStoreURL(getenv)
}

// localStore is a store URL resolved for the commands: for the stores that
// are files on this machine (file, sqlite, and kms+ around them), the URL
// names the file by its absolute path, so that messages say which file
// (not "file:"), and path is that file.
type localStore struct {
	url, path string
	memory    bool // memory:// or kms+memory://: gone when the process exits
}

func resolveStore(raw string, getenv func(string) string) (localStore, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// storage.Open says why, without quoting secrets.
		return localStore{url: raw}, nil
	}
	kms := strings.HasPrefix(strings.ToLower(u.Scheme), "kms+")
	inner := *u
	inner.Scheme = strings.ToLower(strings.TrimPrefix(strings.ToLower(u.Scheme), "kms+"))
	var p string
	switch inner.Scheme {
	case "memory":
		return localStore{url: raw, memory: true}, nil
	case "file":
		if inner.Path == "" && inner.Opaque == "" && (inner.Host == "" || inner.Host == "localhost") {
			// file: and file:// name the default file.
			def, err := defaultStoreURL(getenv)
			if err != nil {
				return localStore{}, err
			}
			d, _ := url.Parse(def)
			inner.Path = d.Path
		}
		fa, err := file.OpenURL(context.Background(), &inner) // no I/O
		if err != nil {
			return localStore{url: raw}, nil // storage.Open reports it
		}
		p = fa.Path()
		fa.Close()
	case "sqlite":
		p = inner.Path
		if inner.Opaque != "" {
			if p, err = url.PathUnescape(inner.Opaque); err != nil {
				return localStore{url: raw}, nil
			}
		}
		if p == "" || (inner.Host != "" && inner.Host != "localhost") {
			return localStore{url: raw}, nil
		}
	default:
		return localStore{url: raw}, nil
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return localStore{}, usagef("store path: %v", err)
	}
	r := url.URL{Scheme: inner.Scheme, Path: abs, RawQuery: u.RawQuery}
	if kms {
		r.Scheme = "kms+" + r.Scheme
	}
	return localStore{url: r.String(), path: abs}, nil
}

// storeMissingError: a command that reads found no store at the path; it
// does not create one (a mistyped path would leave an empty database).
type storeMissingError struct{ url string }

func (e *storeMissingError) Error() string {
	return fmt.Sprintf("store %s does not exist (a mistyped path? \"tokencache init\" creates it)", displayURL(e.url))
}

func (e *storeMissingError) Unwrap() error { return storage.ErrNotFound }

// checkExists refuses a local store that is not there.
func (s localStore) checkExists() error {
	if s.path == "" {
		return nil
	}
	if _, err := os.Stat(s.path); errors.Is(err, fs.ErrNotExist) {
		return &storeMissingError{url: s.url}
	}
	return nil
}

// whyNotCreatable explains a store file that could not be created: the
// adapters see only that opening it failed (SQLite: "no such file", when
// its directory is not writable).
func (s localStore) whyNotCreatable() string {
	if s.path == "" {
		return ""
	}
	if _, err := os.Stat(s.path); err == nil {
		return ""
	}
	dir := filepath.Dir(s.path)
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			f, err := os.CreateTemp(d, ".tokencache-probe-*")
			if err != nil {
				var pe *fs.PathError
				if errors.As(err, &pe) {
					err = pe.Err
				}
				return fmt.Sprintf("cannot create %s: directory %s: %v", s.path, d, err)
			}
			name := f.Name()
			f.Close()
			os.Remove(name)
			return ""
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

// checkProfileName says what is wrong with a profile name, with the limit
// in bytes (a name of 100 non-ASCII characters can be over it).
func checkProfileName(name string) error {
	if storage.CheckKey(name) == nil {
		return nil
	}
	shown := name
	if len(shown) > 40 {
		shown = strings.ToValidUTF8(shown[:40], "") + "..."
	}
	switch {
	case name == "":
		return usagef("the profile name is empty")
	case !utf8.ValidString(name):
		return usagef("profile name %q is not valid UTF-8", shown)
	case len(name) > storage.MaxKeyLen:
		return usagef("profile name %q is %d bytes long in UTF-8 (%d characters); the limit is %d bytes", shown, len(name), utf8.RuneCountInString(name), storage.MaxKeyLen)
	}
	return usagef("profile name %q contains control characters", shown)
}
