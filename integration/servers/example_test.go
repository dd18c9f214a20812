package servers_test

import (
	"context"
	"fmt"
	"log"
	"strings"

	"github.com/tokencache/tokencache/integration/servers"
)

// Outside a test (say, in TestMain), start a server, use its URL, and
// terminate it yourself. In a test, servers.Redis(t) does all three.
func Example() {
	ctx := context.Background()
	srv, err := servers.StartRedis(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Terminate(ctx)

	// srv.URL is "redis://127.0.0.1:PORT/0": pass it to redis.ParseURL or
	// to storage.Open.
	fmt.Println(strings.HasPrefix(srv.URL, "redis://127.0.0.1:"), strings.HasSuffix(srv.URL, "/0"))
	// Output: true true
}
