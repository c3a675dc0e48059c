//go:build linux

package supervise

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/safe-restart/safe-restart/supervise/proc"
)

// renameWatch sees a file renamed away (inotify IN_MOVED_FROM) even when it
// is renamed back at once: nginx renames its pidfile for a binary upgrade
// and back within a millisecond when the new binary cannot start, which
// polling for the renamed file misses.
type renameWatch struct {
	fd   int
	name string
}

// watchRenames watches path's directory for path being renamed away.
func watchRenames(path string) (*renameWatch, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("inotify_init1", err)
	}
	if _, err := unix.InotifyAddWatch(fd, filepath.Dir(path), unix.IN_MOVED_FROM); err != nil {
		proc.CloseFD(fd)
		return nil, &os.PathError{Op: "inotify_add_watch", Path: filepath.Dir(path), Err: err}
	}
	return &renameWatch{fd: fd, name: filepath.Base(path)}, nil
}

// moved reads the events queued so far and reports whether one renamed
// the file away.
func (w *renameWatch) moved() bool {
	buf := make([]byte, 4096)
	found := false
	for {
		n, err := proc.RetryEINTR(func() (int, error) { return unix.Read(w.fd, buf) })
		if errors.Is(err, unix.EAGAIN) || err != nil || n <= 0 {
			return found
		}
		for b := buf[:n]; len(b) >= unix.SizeofInotifyEvent; {
			nameLen := int(binary.NativeEndian.Uint32(b[12:16]))
			end := min(unix.SizeofInotifyEvent+nameLen, len(b))
			name, _, _ := bytes.Cut(b[unix.SizeofInotifyEvent:end], []byte{0})
			found = found || string(name) == w.name
			b = b[end:]
		}
	}
}

// close ends the watch.
func (w *renameWatch) close() { proc.CloseFD(w.fd) }
