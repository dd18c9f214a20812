package servers

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/testcontainers/testcontainers-go"
	"golang.org/x/sys/unix"
)

// imageFile is one file of an image's root filesystem.
type imageFile struct {
	path string // absolute path inside the image
	src  string // regular file on the host
	mode int64
}

// imageSpec describes a FROM scratch image: files copied to the root and the
// Dockerfile lines that follow the COPY (WORKDIR, USER, ENTRYPOINT, ...).
type imageSpec struct {
	name  string // short name, used in the repository: tokencache-test/NAME
	files []imageFile
	tail  []string
}

// nativeFiles returns a dynamically linked host binary, to be placed at
// imagePath, and every shared library ldd lists for it, each at the path
// the host's loader found it, so the loader inside the image finds them in
// the same places.
func nativeFiles(binary, imagePath string) ([]imageFile, error) {
	// The binary itself, not a symlink: Debian's redis-server is a link to
	// redis-check-rdb, and Redis picks its mode from its own name, so the
	// file must be copied under the name it is run as.
	real, err := filepath.EvalSymlinks(binary)
	if err != nil {
		return nil, err
	}
	files := []imageFile{{path: imagePath, src: real, mode: 0o755}}
	out, err := exec.Command("ldd", real).Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", real, err)
	}
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		var lib string
		switch {
		case len(fields) >= 3 && fields[1] == "=>":
			// "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)"
			if !strings.HasPrefix(fields[2], "/") {
				return nil, fmt.Errorf("ldd %s: %s", real, strings.TrimSpace(line))
			}
			lib = fields[2]
		case len(fields) >= 1 && strings.HasPrefix(fields[0], "/"):
			// The program interpreter: "/lib64/ld-linux-x86-64.so.2 (0x...)".
			lib = fields[0]
		default:
			// linux-vdso.so.1 and the like live in the kernel.
			continue
		}
		src, err := filepath.EvalSymlinks(lib)
		if err != nil {
			return nil, err
		}
		files = append(files, imageFile{path: lib, src: src, mode: 0o755})
	}
	return files, nil
}

// contextArchive builds the Docker build context as a tar archive. The
// archive is byte-for-byte reproducible (sorted entries, zero times), so its
// hash names the image.
func (s imageSpec) contextArchive() ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	files := slices.Clone(s.files)
	slices.SortFunc(files, func(a, b imageFile) int { return strings.Compare(a.path, b.path) })

	// Explicit directories, so their modes do not depend on the builder,
	// plus a /tmp, which programs expect and scratch lacks.
	dirs := map[string]int64{"/tmp": 0o1777}
	for _, f := range files {
		for d := path.Dir(f.path); d != "/"; d = path.Dir(d) {
			if _, ok := dirs[d]; !ok {
				dirs[d] = 0o755
			}
		}
	}
	dirNames := make([]string, 0, len(dirs))
	for d := range dirs {
		dirNames = append(dirNames, d)
	}
	slices.Sort(dirNames)
	for _, d := range dirNames {
		if err := tw.WriteHeader(&tar.Header{
			Typeflag: tar.TypeDir,
			Name:     "rootfs" + d + "/",
			Mode:     dirs[d],
			ModTime:  time.Unix(0, 0),
		}); err != nil {
			return nil, err
		}
	}

	for i, f := range files {
		if i > 0 && files[i-1].path == f.path {
			continue // the same library listed twice
		}
		data, err := os.ReadFile(f.src)
		if err != nil {
			return nil, err
		}
		if err := writeTarFile(tw, "rootfs"+f.path, f.mode, data); err != nil {
			return nil, err
		}
	}

	dockerfile := "FROM scratch\nCOPY rootfs/ /\n" + strings.Join(s.tail, "\n") + "\n"
	if err := writeTarFile(tw, "Dockerfile", 0o644, []byte(dockerfile)); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writeTarFile(tw *tar.Writer, name string, mode int64, data []byte) error {
	if err := tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		Mode:     mode,
		Size:     int64(len(data)),
		ModTime:  time.Unix(0, 0),
	}); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}

// ensureImage returns the tag of the image described by s, building it
// first when the Docker daemon does not have it. The tag holds a hash of
// the build context, so an image built from an older binary is never
// reused, and an unchanged one is never rebuilt.
func ensureImage(ctx context.Context, s imageSpec) (string, error) {
	setDockerEnv()
	archive, err := s.contextArchive()
	if err != nil {
		return "", fmt.Errorf("image %s: %w", s.name, err)
	}
	sum := sha256.Sum256(archive)
	repo := "tokencache-test/" + s.name
	tag := hex.EncodeToString(sum[:8])
	ref := repo + ":" + tag

	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return "", fmt.Errorf("docker: %w", err)
	}
	defer cli.Close()
	exists := func() (bool, error) {
		_, err := cli.ImageInspect(ctx, ref)
		if errdefs.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	}
	if ok, err := exists(); ok || err != nil {
		return ref, err
	}

	// Another test binary of the same `go test ./...` may be building the
	// same image right now: wait for it, then look again.
	err = withFileLock(ctx, "image-"+s.name, func() error {
		if ok, err := exists(); ok || err != nil {
			return err
		}
		provider, err := testcontainers.NewDockerProvider(testcontainers.WithLogger(quietLogger))
		if err != nil {
			return err
		}
		defer provider.Close()
		var log bytes.Buffer
		_, err = provider.BuildImage(ctx, &testcontainers.ContainerRequest{
			FromDockerfile: testcontainers.FromDockerfile{
				ContextArchive: bytes.NewReader(archive),
				Repo:           repo,
				Tag:            tag,
				KeepImage:      true,
				BuildLogWriter: &log,
			},
		})
		if err != nil {
			return fmt.Errorf("%w\n%s", err, log.String())
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("build image %s: %w", ref, err)
	}
	return ref, nil
}

// cacheDir is where built binaries and lock files live across test runs.
func cacheDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "tokencache-servers")
	return dir, os.MkdirAll(dir, 0o755)
}

// withFileLock runs fn holding an exclusive lock on a file in cacheDir, so
// that concurrent test processes do not build the same thing twice. flock
// locks belong to an open file, so goroutines of one process exclude each
// other too.
func withFileLock(ctx context.Context, name string, fn func() error) error {
	dir, err := cacheDir()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(dir, name+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	fd := int(f.Fd())
	// Poll instead of blocking so that a cancelled context ends the wait.
	for {
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("lock %s: %w", f.Name(), err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	// Closing the file releases the lock, also if fn panics.
	return fn()
}

// lookBinary finds a server binary installed by a Debian package.
func lookBinary(name, pkg string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/bin", "/usr/sbin", "/usr/local/bin"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found: install it (apt-get install %s; scripts/test.sh does)", name, pkg)
}

// hashFiles hashes the named files' names and contents.
func hashFiles(paths ...string) (string, error) {
	h := sha256.New()
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return "", err
		}
		// Name and length first, so that file boundaries are part of
		// the hash.
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", filepath.Base(p), st.Size())
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:8]), nil
}
