package servers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// hostProcess is a server run as a process on this host rather than in a
// container: PostgreSQL, which will not run as root and needs a data
// directory made by initdb, and dynalite, a node program. It listens on
// 127.0.0.1 only, and is killed with the test binary (Pdeathsig), so a
// killed test run leaves no server behind.
type hostProcess struct {
	name    string
	command func() *exec.Cmd // a fresh command for each start
	cred    *syscall.Credential
	cleanup func() // after the last stop: remove data directories

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	out    *tailBuffer
}

// start runs the command; a second start while it runs does nothing.
func (p *hostProcess) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.exited:
		default:
			return nil
		}
	}
	cmd := p.command()
	p.out = &tailBuffer{max: 4096}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own process group, so a terminal's ^C reaches it only
		// through the test binary's death, and Pdeathsig for that.
		Setpgid:    true,
		Pdeathsig:  syscall.SIGKILL,
		Credential: p.cred,
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", p.name, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	p.cmd, p.exited = cmd, exited
	return nil
}

// running reports an error once the process has exited, with its output.
func (p *hostProcess) running() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return fmt.Errorf("%s is not running", p.name)
	}
	select {
	case <-p.exited:
		return fmt.Errorf("%s exited (%v); output:\n%s", p.name, p.cmd.ProcessState, p.out.String())
	default:
		return nil
	}
}

// stop asks the process to end (SIGINT: PostgreSQL's fast shutdown, which
// disconnects clients and writes a checkpoint) and kills it after 10 s.
func (p *hostProcess) stop(ctx context.Context) error {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-exited:
		return nil
	default:
	}
	_ = cmd.Process.Signal(os.Interrupt)
	select {
	case <-exited:
		return nil
	case <-time.After(10 * time.Second):
	case <-ctx.Done():
	}
	_ = cmd.Process.Kill()
	<-exited
	return ctx.Err()
}

func (p *hostProcess) terminate(ctx context.Context) error {
	err := p.stop(ctx)
	if p.cleanup != nil {
		p.cleanup()
	}
	return err
}

// waitProcessReady polls probe until it succeeds, the process exits or ctx
// ends.
func waitProcessReady(ctx context.Context, p *hostProcess, probe func(ctx context.Context) error) error {
	var last error
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		last = probe(pctx)
		cancel()
		if last == nil {
			return nil
		}
		if err := p.running(); err != nil {
			return fmt.Errorf("%w (last probe error: %v)", err, last)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w (last error: %v)", p.name, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// unprivileged returns the credential to run a server as when this process
// is root (the named system user, which the server's Debian package
// creates), or nil to run it as ourselves.
func unprivileged(name string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("running as root, and no %q user to run the server as: %w", name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

// sysProcAttr runs a one-off command (initdb) as cred's user, when set.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
}

// chownAll gives dir and everything in it to cred's user, when set.
func chownAll(cred *syscall.Credential, paths ...string) error {
	if cred == nil {
		return nil
	}
	for _, p := range paths {
		if err := os.Chown(p, int(cred.Uid), int(cred.Gid)); err != nil {
			return err
		}
	}
	return nil
}

// tailBuffer keeps the last max bytes written to it: a server's output, for
// the error when it fails to start.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append([]byte(nil), t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
