package supervise

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// StateDir is safe-restart's state directory (--state-dir), and the one
// place its layout is named. The operations take the directories below it
// (StartOptions.LineageDir, StopOptions.IntentDir, ...) from its methods:
//
//	lock/SERVICE.lock                 held by the one operation on SERVICE (AcquireLock)
//	lineage/SERVICE.PID.json          the IPC objects a master safe-restart started created (ipcguard.SaveLineage)
//	SERVICE.stopping.json             a stop under way, finished by the next command (stop records)
//	samples/SERVICE.json              samples of the master for doctor (growth.RecordSample)
//	last-operation/SERVICE.json       the last operation's outcome, for metrics (SaveLastOperation)
//
// Every command checks it first (CheckStateDir).
type StateDir string

// DefaultStateDir is the state directory when --state-dir is not given: a
// tmpfs, so records of processes end with the boot that ran them.
const DefaultStateDir StateDir = "/run/safe-restart"

// Locks is the directory of the services' locks.
func (d StateDir) Locks() string { return string(d) + "/lock" }

// Lineages is the directory of the lineages of the masters started.
func (d StateDir) Lineages() string { return string(d) + "/lineage" }

// Intents is the directory of the stop records.
func (d StateDir) Intents() string { return string(d) }

// Samples is the directory of the masters' samples.
func (d StateDir) Samples() string { return filepath.Join(string(d), "samples") }

// LastOperations is the directory of the last-operation records.
func (d StateDir) LastOperations() string { return filepath.Join(string(d), "last-operation") }

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
