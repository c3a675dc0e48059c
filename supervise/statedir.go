package supervise

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// ErrUnsafeStateDir reports a state directory that another user could
// have written: its stop records, lineages and locks steer what is
// signalled and which IPC objects are removed, so none of it is read.
var ErrUnsafeStateDir = errors.New("unsafe state directory")

// CheckStateDir refuses (ErrUnsafeStateDir) a state directory that
// someone else could write: dir and every directory below it must be a
// directory (a symlink is not followed), owned by the effective user or
// by root, and writable by no group or other user. A dir that does not
// exist yet passes: the commands create it (mode 0755, owned by the
// effective user).
func CheckStateDir(dir string) error {
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("%w: %w", ErrUnsafeStateDir, err)
		}
		if d.Type()&fs.ModeSymlink != 0 && path == dir {
			return fmt.Errorf("%w: %s is a symlink: give the directory itself", ErrUnsafeStateDir, dir)
		}
		if !d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return fmt.Errorf("%w: %w", ErrUnsafeStateDir, err)
		}
		return checkOwnDir(path, fi)
	})
}

// checkOwnDir refuses a directory owned by neither the effective user nor
// root, or writable by its group or by others.
func checkOwnDir(path string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil // no owner to check on this system
	}
	if euid := os.Geteuid(); int(st.Uid) != euid && st.Uid != 0 {
		return fmt.Errorf("%w: %s is owned by uid %d, neither root nor uid %d, which runs safe-restart", ErrUnsafeStateDir, path, st.Uid, euid)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%w: %s is writable by others (mode %s): chmod go-w %s", ErrUnsafeStateDir, path, fi.Mode().Perm(), path)
	}
	return nil
}
