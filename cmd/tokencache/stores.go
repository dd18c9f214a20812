package main

import (
	"net/url"

	"github.com/tokencache/tokencache/storage/file"

	// Each adapter registers its URL scheme with storage.Open; importing
	// it is all the CLI needs to accept its URLs. kms registers
	// kms+<scheme> for the others: envelope encryption around any of them.
	_ "github.com/tokencache/tokencache/storage/etcd"
	_ "github.com/tokencache/tokencache/storage/kms"
	_ "github.com/tokencache/tokencache/storage/memcached"
	_ "github.com/tokencache/tokencache/storage/memory"
	_ "github.com/tokencache/tokencache/storage/mongo"
	_ "github.com/tokencache/tokencache/storage/redis"
	_ "github.com/tokencache/tokencache/storage/sqlite"
)

// defaultStoreURL is the embedded file store at pancloud's path
// ($PAN_CREDENTIALS_DBFILE, else ~/.config/pancloud/credentials.json), so
// that tokencache and pancloud share one credentials.json out of the box.
func defaultStoreURL() (string, error) {
	p, err := file.DefaultPath()
	if err != nil {
		return "", err
	}
	return (&url.URL{Scheme: "file", Path: p}).String(), nil
}
