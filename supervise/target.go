package supervise

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/safe-restart/safe-restart/ipcguard"
)

// pidfileSlack absorbs the granularity of start times derived from btime
// (about 1 s) when comparing them with a pidfile's modification time.
const pidfileSlack = 2 * time.Second

// FromPIDFile returns the process a pidfile names, after proving it is the
// server's: alive, running exe (symlinks resolved, " (deleted)" allowed
// after an upgrade), and started no later than the file was written. It
// never trusts a stale pidfile: a dead pid is ErrStalePIDFile, another
// program ErrForeignProcess, a process younger than the file ErrPIDReused;
// with the last two the process found is returned beside the error.
func FromPIDFile(procRoot, path, exe string) (ipcguard.Proc, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return ipcguard.Proc{}, fmt.Errorf("read pidfile: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return ipcguard.Proc{}, fmt.Errorf("read pidfile: %w", err)
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(data)))
	if err != nil || pid <= 0 {
		return ipcguard.Proc{}, fmt.Errorf("%w: %s holds %q, not a pid", ErrBadPIDFile, path, truncate(data, 40))
	}
	p, err := ipcguard.ReadProc(procRoot, pid)
	if errors.Is(err, ipcguard.ErrNoProcess) || (err == nil && !p.Alive()) {
		return ipcguard.Proc{}, fmt.Errorf("%w: %s names pid %d, which is not running", ErrStalePIDFile, path, pid)
	}
	if err != nil {
		return ipcguard.Proc{}, err
	}
	if !runs(p, exe) && exiting(procRoot, p, exe) {
		return ipcguard.Proc{}, fmt.Errorf("%w: %s names pid %d, which was exiting", ErrStalePIDFile, path, pid)
	}
	if !runs(p, exe) && p.Exe == "" {
		return p, fmt.Errorf("%w: %s names pid %d (%s), whose executable cannot be read from %s/%d/exe (not permitted?): not proven to run %s",
			ErrForeignProcess, path, pid, p.Comm, procRoot, pid, exe)
	}
	if !runs(p, exe) {
		return p, fmt.Errorf("%w: %s names pid %d, which runs %q (%s), not %s",
			ErrForeignProcess, path, pid, p.Exe, p.Comm, exe)
	}
	if p.Start.After(fi.ModTime().Add(pidfileSlack)) {
		return p, fmt.Errorf("%w: %s names pid %d, which started at %s, after the file was written (%s)",
			ErrPIDReused, path, pid, p.Start.Format(time.RFC3339), fi.ModTime().Format(time.RFC3339))
	}
	return p, nil
}

// exitGrace bounds the wait for a server process seen exiting.
const exitGrace = time.Second

// exiting reports whether p is the server's process in the middle of its
// exit: named like exe, its exe link already gone (the kernel drops it
// with the memory, before the process becomes a zombie), and exited
// within exitGrace. A master that just logged its fatal error is seen so.
func exiting(procRoot string, p ipcguard.Proc, exe string) bool {
	if p.Exe != "" || p.Comm != commOf(exe) {
		return false
	}
	alive, err := waitExited(context.Background(), procRoot, []ipcguard.Proc{p}, exitGrace, nil)
	return err == nil && len(alive) == 0
}

// Same re-reads p and returns ErrPIDReused if its pid now names another
// process, or an error wrapping ipcguard.ErrNoProcess if it is gone.
func Same(procRoot string, p ipcguard.Proc) (ipcguard.Proc, error) {
	now, err := ipcguard.ReadProc(procRoot, p.PID)
	if err != nil {
		return now, err
	}
	if now.StartTicks != p.StartTicks {
		return now, fmt.Errorf("%w: pid %d started at tick %d, not %d (%s now)", ErrPIDReused, p.PID, now.StartTicks, p.StartTicks, now.Comm)
	}
	return now, nil
}

// runs reports whether p runs exe: the kernel shows /proc/PID/exe resolved,
// with " (deleted)" once the binary was replaced.
func runs(p ipcguard.Proc, exe string) bool {
	if real, err := filepath.EvalSymlinks(exe); err == nil {
		exe = real
	}
	return p.Exe == exe || p.Exe == exe+" (deleted)"
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
