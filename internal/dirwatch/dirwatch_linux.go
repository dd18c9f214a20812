package dirwatch

import (
	"bytes"
	"encoding/binary"
	"os"

	"golang.org/x/sys/unix"
)

// mask covers every way a file's content or existence changes: replaced by
// rename (IN_MOVED_TO) or renamed away (IN_MOVED_FROM), created, deleted,
// and written in place (IN_MODIFY for each write, as SQLite appends to its
// WAL and pancloud rewrites credentials.json through a handle it keeps
// open; IN_CLOSE_WRITE for writers that close). IN_DELETE_SELF and
// IN_MOVE_SELF end the watch (see stopped); IN_ONLYDIR refuses a path that
// is not a directory.
const mask = unix.IN_MOVED_TO | unix.IN_MOVED_FROM | unix.IN_CREATE | unix.IN_DELETE |
	unix.IN_MODIFY | unix.IN_CLOSE_WRITE | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR

// watchDir returns an inotify instance watching dir, as a non-blocking
// *os.File: Go's poller then parks the reader without holding a thread,
// and Close wakes a Read in progress.
func watchDir(dir string) (*os.File, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, os.NewSyscallError("inotify_init1", err)
	}
	if _, err := unix.InotifyAddWatch(fd, dir, mask); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("inotify_add_watch", err)
	}
	return os.NewFile(uintptr(fd), "inotify:"+dir), nil
}

// readEvents reads f until it is closed or the watch ends, calling changed
// once for each batch of events that concerns one of names. Batching is
// enough: a waiter only needs to know that something happened since it
// subscribed, not how many times.
func readEvents(f *os.File, names map[string]bool, changed func()) {
	// Room for many events; one needs at most a header and NAME_MAX+1.
	buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	for {
		n, err := f.Read(buf)
		if err != nil {
			return
		}
		relevant, ended := scan(buf[:n], names)
		if ended {
			return
		}
		if relevant {
			changed()
		}
	}
}

// scan parses a batch of inotify events (struct inotify_event: wd, mask,
// cookie, len, then len bytes of NUL-padded name).
func scan(b []byte, names map[string]bool) (relevant, ended bool) {
	for len(b) >= unix.SizeofInotifyEvent {
		m := binary.NativeEndian.Uint32(b[4:8])
		nameLen := int(binary.NativeEndian.Uint32(b[12:16]))
		end := min(unix.SizeofInotifyEvent+nameLen, len(b))
		name := b[unix.SizeofInotifyEvent:end]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		b = b[end:]
		switch {
		case m&(unix.IN_IGNORED|unix.IN_DELETE_SELF|unix.IN_MOVE_SELF|unix.IN_UNMOUNT) != 0:
			// The watch is gone, or watches a directory that no longer
			// has the path: the caller starts over.
			ended = true
		case m&unix.IN_Q_OVERFLOW != 0:
			// Events were dropped; any of them may have been ours.
			relevant = true
		case names[string(name)]:
			relevant = true
		}
	}
	return relevant, ended
}
