package servers

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// goBinary returns the path of a static Go binary cached as NAME-KEY in
// cacheDir, running build to make it first when it is missing. key must
// change whenever the binary's source does (a module version, a hash of the
// source files).
func goBinary(ctx context.Context, name, key string, build func(ctx context.Context, dst string) error) (string, error) {
	dir, err := cacheDir()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "bin", name+"-"+key)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	err = withFileLock(ctx, "bin-"+name, func() error {
		if _, err := os.Stat(bin); err == nil {
			return nil // another process built it while we waited
		}
		if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
			return err
		}
		tmp, err := os.MkdirTemp(filepath.Dir(bin), name+"-build-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		out := filepath.Join(tmp, name)
		if err := build(ctx, out); err != nil {
			return err
		}
		// Rename is atomic, so no one sees a half-written binary.
		return os.Rename(out, bin)
	})
	if err != nil {
		return "", fmt.Errorf("build %s: %w", name, err)
	}
	return bin, nil
}

// goCommand runs the go command in dir. The binaries go into FROM scratch
// images, hence static (CGO_ENABLED=0) and for Linux; -mod=mod lets a module
// fill in a go.sum entry it lacks instead of failing, and GOWORK=off keeps a
// go.work of the surrounding tree out of the build.
func goCommand(ctx context.Context, dir string, env []string, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"CGO_ENABLED=0",
		"GOOS=linux",
		"GOARCH="+runtime.GOARCH,
		"GOFLAGS=-mod=mod",
		"GOWORK=off",
	)
	cmd.Env = append(cmd.Env, env...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %v: %w\n%s", args, err, out.String())
	}
	return nil
}

// goInstall builds pkg@version, a main package from the module proxy, into
// dst. It runs in an empty directory so that no surrounding go.mod takes
// part.
func goInstall(ctx context.Context, pkgAtVersion, dst string) error {
	gobin := filepath.Dir(dst)
	if err := goCommand(ctx, gobin, []string{"GOBIN=" + gobin},
		"install", "-trimpath", "-ldflags=-s -w", pkgAtVersion); err != nil {
		return err
	}
	// go install names the binary after the package's last path element.
	built := filepath.Join(gobin, filepath.Base(modulePath(pkgAtVersion)))
	if built == dst {
		return nil
	}
	return os.Rename(built, dst)
}

func modulePath(pkgAtVersion string) string {
	for i := len(pkgAtVersion) - 1; i >= 0; i-- {
		if pkgAtVersion[i] == '@' {
			return pkgAtVersion[:i]
		}
	}
	return pkgAtVersion
}
