package storage_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/tokencache/tokencache/storage"
	_ "github.com/tokencache/tokencache/storage/memory"
)

// Update is a read-modify-write that retries when another writer got there
// first; the function may run more than once.
func ExampleStore_Update() {
	ctx := context.Background()
	st, err := storage.Open(ctx, "memory://example-update")
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()

	rec, _, err := st.Update(ctx, "tenant-1", func(r *storage.Record) error {
		r.ClientID = "my-client"
		r.TokenURL = "https://auth.example.com/oauth2/token"
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(rec.Profile, rec.ClientID)

	_, _, err = st.Load(ctx, "nobody")
	fmt.Println(errors.Is(err, storage.ErrNotFound))
	// Output:
	// tenant-1 my-client
	// true
}
