package servers

import (
	"bufio"
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// EnvMongoURI names an existing MongoDB-compatible server to use instead of
// a container.
const EnvMongoURI = "TOKENCACHE_TEST_MONGO_URI"

// ferretdbModule is the module path of ../ferretdb, checked so that a
// directory of the same name elsewhere is not built by mistake.
const ferretdbModule = "github.com/tokencache/tokencache/integration/ferretdb"

// StartFerretDB starts FerretDB (the MongoDB wire protocol on SQLite) in a
// container. Its URL is "mongodb://127.0.0.1:PORT/". It needs no
// credentials. FerretDB 1.x covers CRUD, indexes and findAndModify, not
// change streams or transactions.
//
// The binary is built from the integration/ferretdb module of this
// repository, found next to this package's source or above the working
// directory; the first build takes a minute or two, later ones come from the
// cache.
func StartFerretDB(ctx context.Context) (*Server, error) {
	dir, err := ferretdbSourceDir()
	if err != nil {
		return nil, err
	}
	key, err := hashFiles(filepath.Join(dir, "go.mod"), filepath.Join(dir, "go.sum"), filepath.Join(dir, "main.go"))
	if err != nil {
		return nil, err
	}
	bin, err := goBinary(ctx, "ferretdb", key, func(ctx context.Context, dst string) error {
		return goCommand(ctx, dir, nil, "build", "-trimpath", "-ldflags=-s -w", "-o", dst, ".")
	})
	if err != nil {
		return nil, err
	}
	image, err := ensureImage(ctx, imageSpec{
		name:  "ferretdb",
		files: []imageFile{{path: "/ferretdb", src: bin, mode: 0o755}},
		// The SQLite databases go to /data, which WORKDIR creates.
		tail: []string{"WORKDIR /data", `ENTRYPOINT ["/ferretdb", "-listen", "0.0.0.0:27017", "-data", "/data"]`},
	})
	if err != nil {
		return nil, err
	}
	return startSingle(ctx, "ferretdb", containerSpec{
		image:         image,
		containerPort: "27017/tcp",
	}, probeMongo, func(addr string) string { return "mongodb://" + addr + "/" })
}

// ferretdbSourceDir finds the integration/ferretdb module: next to this
// file when the package is compiled from a checkout, else in a parent of the
// working directory (test binaries run in their package's directory), which
// also covers builds with -trimpath.
func ferretdbSourceDir() (string, error) {
	var candidates []string
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		candidates = append(candidates, filepath.Join(filepath.Dir(file), "..", "ferretdb"))
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			candidates = append(candidates, filepath.Join(d, "integration", "ferretdb"))
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	for _, c := range candidates {
		if modulePathOf(filepath.Join(c, "go.mod")) == ferretdbModule {
			return filepath.Clean(c), nil
		}
	}
	return "", errors.New("ferretdb: source module integration/ferretdb not found next to the servers package or above the working directory; set " + EnvMongoURI + " to use an existing server")
}

func modulePathOf(gomod string) string {
	f, err := os.Open(gomod)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}

func mongoFromEnv() (*Server, error) {
	raw := getenv(EnvMongoURI)
	if raw == "" {
		return nil, nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "mongodb" && u.Scheme != "mongodb+srv") {
		return nil, envError(EnvMongoURI, raw, "want mongodb://host:port/")
	}
	return externalServer(raw, strings.Split(u.Host, ",")...), nil
}
