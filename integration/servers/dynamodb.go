package servers

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// EnvDynamoDBEndpoint names an existing DynamoDB-compatible endpoint
// (http://host:port) to use instead of starting dynalite.
const EnvDynamoDBEndpoint = "TOKENCACHE_TEST_DYNAMODB_ENDPOINT"

// Dynalite is the npm package StartDynamoDB runs, at a pinned version:
// 3.2.2 runs on the Node.js of Debian 12 (18.x) as well as on newer ones
// (4.x wants Node 20).
const (
	DynalitePackage = "dynalite"
	DynaliteVersion = "3.2.2"
	// DynamoDBRegion is the region clients of StartDynamoDB's server use:
	// dynalite accepts any, but the SDK needs one.
	DynamoDBRegion = "us-east-1"
)

// StartDynamoDB starts dynalite, DynamoDB's API on LevelDB, with the
// Node.js of Debian's nodejs package, as a process listening on 127.0.0.1
// only. Its URL is the endpoint "http://127.0.0.1:PORT", to be used as a
// DynamoDB client's base endpoint with region DynamoDBRegion and any static
// credentials (dynalite checks that requests are signed, not by whom).
// Tables and items live in a temporary LevelDB directory: they survive
// Stop and Start, and Terminate removes them. Tables become active at
// once.
//
// dynalite is installed with npm into os.UserCacheDir()/tokencache-servers
// on first use (scripts/test.sh does it beforehand).
func StartDynamoDB(ctx context.Context) (*Server, error) {
	node, err := lookBinary("node", "nodejs")
	if err != nil {
		return nil, err
	}
	pkg, err := dynaliteDir(ctx)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "tokencache-dynalite-")
	if err != nil {
		return nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	return startWithRetry(ctx, func(ctx context.Context) (*Server, error) {
		ports, err := freePorts(1)
		if err != nil {
			return nil, err
		}
		port := ports[0]
		// dynalite's command line listens on every interface; its module
		// returns the http.Server, which is told to listen on loopback.
		script := fmt.Sprintf(`require(%q)({path: %q, createTableMs: 0, deleteTableMs: 0, updateTableMs: 0})`+
			`.listen(%d, "127.0.0.1", () => console.log("listening"))`,
			filepath.Join(pkg, "node_modules", DynalitePackage), filepath.Join(dir, "db"), port)
		p := &hostProcess{
			name:    "dynalite",
			command: func() *exec.Cmd { return exec.Command(node, "-e", script) },
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		s := &Server{URL: "http://" + addr, Addr: addr, Addrs: []string{addr}, proc: p}
		s.ready = func(ctx context.Context) error {
			return waitProcessReady(ctx, p, func(ctx context.Context) error { return probeDynamoDB(ctx, addr) })
		}
		if err := p.start(); err != nil {
			return nil, err
		}
		rctx, cancel := context.WithTimeout(ctx, readyTimeout)
		defer cancel()
		if err := s.ready(rctx); err != nil {
			p.stop(context.WithoutCancel(ctx))
			return nil, err
		}
		p.cleanup = cleanup
		return s, nil
	})
}

// dynaliteDir returns the npm prefix dynalite is installed under, running
// npm install first when it is not.
func dynaliteDir(ctx context.Context) (string, error) {
	base, err := cacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(base, DynalitePackage+"-"+DynaliteVersion)
	marker := filepath.Join(dir, "node_modules", DynalitePackage, "package.json")
	if _, err := os.Stat(marker); err == nil {
		return dir, nil
	}
	npm, err := lookBinary("npm", "npm")
	if err != nil {
		return "", err
	}
	err = withFileLock(ctx, "npm-"+DynalitePackage, func() error {
		if _, err := os.Stat(marker); err == nil {
			return nil
		}
		cmd := exec.CommandContext(ctx, npm, "install", "--prefix", dir, "--no-audit", "--no-fund",
			"--loglevel=error", DynalitePackage+"@"+DynaliteVersion)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("npm install %s@%s: %w\n%s", DynalitePackage, DynaliteVersion, err, out.String())
		}
		return nil
	})
	return dir, err
}

// DynamoDB returns a DynamoDB endpoint for t: the one at
// TOKENCACHE_TEST_DYNAMODB_ENDPOINT, or else dynalite from StartDynamoDB,
// stopped and removed when t ends. It fails t when neither can be had.
func DynamoDB(t testing.TB) *Server {
	t.Helper()
	return forTest(t, "dynalite", dynamoDBFromEnv, StartDynamoDB)
}

// SharedDynamoDB is a shared StartDynamoDB, or
// TOKENCACHE_TEST_DYNAMODB_ENDPOINT's server.
func SharedDynamoDB() *Shared {
	return &Shared{name: "dynalite", fromEnv: dynamoDBFromEnv, start: StartDynamoDB}
}

func dynamoDBFromEnv() (*Server, error) {
	raw := getenv(EnvDynamoDBEndpoint)
	if raw == "" {
		return nil, nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, envError(EnvDynamoDBEndpoint, raw, "want http://host:port")
	}
	return externalServer(raw, u.Host), nil
}

// probeDynamoDB calls ListTables unsigned: dynalite answers it with an
// error about the missing signature, in DynamoDB's JSON, which tells that
// dynalite and not something else listens.
func probeDynamoDB(ctx context.Context, addr string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/", strings.NewReader("{}"))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.0")
	req.Header.Set("X-Amz-Target", "DynamoDB_20120810.ListTables")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if !bytes.Contains(body, []byte("__type")) {
		return fmt.Errorf("dynamodb: ListTables answered %s %q", resp.Status, body)
	}
	return nil
}
