package credentials_test

import (
	"testing"

	"github.com/tokencache/tokencache/credentials/credentialstest"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/memory"
)

func TestStormMemory(t *testing.T) {
	name := t.Name()
	credentialstest.Storm(t, func(testing.TB) *storage.Store {
		return storage.NewStore(memory.New(&memory.Options{Name: name}))
	}, credentialstest.StormOptions{})
}
