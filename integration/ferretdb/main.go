// Command ferretdb runs FerretDB's embeddable MongoDB wire protocol server
// on its SQLite handler. It exists so that integration tests can get a
// MongoDB-compatible server without pulling an image from a registry: the
// integration/servers package builds this binary with CGO_ENABLED=0 and packs
// it into a FROM scratch image.
//
// It lives in its own Go module so that FerretDB's large dependency tree stays
// out of the main module's go.mod.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	// 0.0.0.0 is the default because the binary is meant to run inside a
	// container, where the published port reaches it through the bridge.
	listen := flag.String("listen", "0.0.0.0:27017", "TCP address to listen on")
	data := flag.String("data", "/data", "directory for the SQLite databases")
	flag.Parse()

	if err := run(*listen, *data); err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		os.Exit(1)
	}
}

func run(listen, data string) error {
	abs, err := filepath.Abs(data)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return err
	}

	// SIGTERM is what `docker stop` sends; as PID 1 the process would
	// otherwise ignore it and be killed only after the stop timeout.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: listen},
		Logger:    slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Handler:   "sqlite",
		SQLiteURL: "file:" + abs + "/",
	})
	if err != nil {
		return err
	}

	// The readiness probe of integration/servers talks the wire protocol, so
	// this line is for people reading container logs only.
	fmt.Fprintln(os.Stderr, "ferretdb listening on", listen)
	return f.Run(ctx)
}
