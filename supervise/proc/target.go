package proc

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/safe-restart/safe-restart/ipcguard"
)

// PIDFileSlack absorbs the granularity of start times derived from btime
// (about 1 s) when comparing them with a pidfile's modification time.
const PIDFileSlack = 2 * time.Second

// FromPIDFile returns the process a pidfile names, after proving it is the
// server's master: alive, running exe (symlinks resolved, " (deleted)"
// allowed after an upgrade), not a worker of another process running exe
// (serverParent), and started no later than the file was written. It
// never trusts a stale pidfile: a dead pid is ErrStalePIDFile, another
// program ErrForeignProcess, a process younger than the file ErrPIDReused;
// with the last two the process found is returned beside the error.
func FromPIDFile(procRoot, path, exe string) (ipcguard.Proc, error) {
	pid, written, err := ReadPIDFile(path)
	if err != nil {
		return ipcguard.Proc{}, err
	}
	p, err := ipcguard.ReadProc(procRoot, pid)
	if errors.Is(err, ipcguard.ErrNoProcess) || (err == nil && !p.Alive()) {
		return ipcguard.Proc{}, fmt.Errorf("%w: %s names pid %d, which is not running", ErrStalePIDFile, path, pid)
	}
	if err != nil {
		return ipcguard.Proc{}, err
	}
	if err := ProveMaster(procRoot, p, exe, path, path); err != nil {
		if errors.Is(err, ErrStalePIDFile) {
			return ipcguard.Proc{}, err
		}
		return p, err
	}
	if p.Start.After(written.Add(PIDFileSlack)) {
		return p, fmt.Errorf("%w: %s names pid %d, which started at %s, after the file was written (%s)",
			ErrPIDReused, path, pid, p.Start.Format(time.RFC3339), written.Format(time.RFC3339))
	}
	return p, nil
}

// ProveMaster proves that p, a live process that the file at path names
// (a pidfile, a stop record), is a master of the server: it runs exe, not
// merely a program named like it (ErrForeignProcess, also when its
// executable cannot be read), and it is no worker of another process
// running exe (serverParent, which looks beside the server's pidFile for
// a binary upgrade's). A server process seen in its exit, its executable
// already dropped, is ErrStalePIDFile.
func ProveMaster(procRoot string, p ipcguard.Proc, exe, path, pidFile string) error {
	switch {
	case Runs(p, exe):
	case Exiting(procRoot, p, exe):
		return fmt.Errorf("%w: %s names pid %d, which was exiting", ErrStalePIDFile, path, p.PID)
	case p.Exe == "":
		return fmt.Errorf("%w: %s names pid %d (%s), whose executable cannot be read from %s/%d/exe (not permitted?): not proven to run %s",
			ErrForeignProcess, path, p.PID, p.Comm, procRoot, p.PID, exe)
	default:
		return fmt.Errorf("%w: %s names pid %d, which runs %q (%s), not %s", ErrForeignProcess, path, p.PID, p.Exe, p.Comm, exe)
	}
	if parent, ok := serverParent(procRoot, p, exe, pidFile); ok {
		return fmt.Errorf("%w: %s names pid %d, a child of pid %d, which runs %s too: a worker, not the master (the file is wrong)",
			ErrForeignProcess, path, p.PID, parent.PID, exe)
	}
	return nil
}

// OldbinSuffix is added to a pidfile's path by nginx's binary upgrade
// (USR2): the old master moves its pidfile there, and the new one, its
// child, writes the pidfile.
const OldbinSuffix = ".oldbin"

// serverParent returns p's parent when p is one of its workers, not a
// master: the parent is a live process running exe as well, and p does
// not lead its own session (Apache's, nginx's and php-fpm's masters call
// setsid as they detach, also while the starter that forked them, running
// exe, still waits; their workers never do). The one master that neither
// leads a session nor has a parent outside the server is a binary
// upgrade's (nginx's USR2: the new master is the old one's child); it
// passes while the old master is named by the pidfile it moved to
// path+oldbinSuffix and its title says "master process" (the old
// master's workers say "worker process"). The old master need not lead
// its session: one an earlier upgrade started does not.
func serverParent(procRoot string, p ipcguard.Proc, exe, path string) (ipcguard.Proc, bool) {
	if p.Session == p.PID {
		return ipcguard.Proc{}, false
	}
	parent, err := ipcguard.ReadProc(procRoot, p.PPID)
	if err != nil || !parent.Alive() || !Runs(parent, exe) {
		return ipcguard.Proc{}, false
	}
	if old, _, err := ReadPIDFile(path + OldbinSuffix); err == nil && old == parent.PID &&
		strings.Contains(strings.Join(Cmdline(procRoot, p.PID), " "), "master process") {
		return ipcguard.Proc{}, false
	}
	return parent, true
}

// maxPIDFile bounds what a pidfile may hold: a pid and a newline, with
// room to spare.
const maxPIDFile = 64

// ReadPIDFile returns the pid the pidfile at path holds and when it was
// written. It opens the file only when it is a regular file, and then
// without blocking (openRegular: a FIFO planted at the path would block
// open(2) for ever, and the service's lock with it; a device such as
// /dev/watchdog or /dev/zero is never opened), and reads at most
// maxPIDFile bytes.
// Anything else is ErrBadPIDFile, saying what the path is; a missing file
// wraps fs.ErrNotExist.
func ReadPIDFile(path string) (int, time.Time, error) {
	f, fi, err := openRegular(path)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("read pidfile: %w", err)
	}
	if f == nil {
		return 0, time.Time{}, fmt.Errorf("%w: %s is %s, not a regular file", ErrBadPIDFile, path, fileType(fi.Mode()))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPIDFile+1))
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("read pidfile: %w", err)
	}
	if len(data) > maxPIDFile {
		return 0, time.Time{}, fmt.Errorf("%w: %s holds more than %d bytes (%q), not a pid", ErrBadPIDFile, path, maxPIDFile, Truncate(data, 40))
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(data)))
	if err != nil || pid <= 0 {
		return 0, time.Time{}, fmt.Errorf("%w: %s holds %q, not a pid", ErrBadPIDFile, path, Truncate(data, 40))
	}
	return pid, fi.ModTime(), nil
}

// fileType names the type of a file that is not a regular file.
func fileType(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	}
	return "not a regular file (" + m.Type().String() + ")"
}

// exitGrace bounds the wait for a server process seen exiting.
const exitGrace = time.Second

// Exiting reports whether p is the server's process in the middle of its
// exit: named like exe, its exe link already gone (the kernel drops it
// with the memory, before the process becomes a zombie), and exited
// within exitGrace. A master that just logged its fatal error is seen so.
func Exiting(procRoot string, p ipcguard.Proc, exe string) bool {
	if p.Exe != "" || p.Comm != CommOf(exe) {
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

// Runs reports whether p runs exe: the kernel shows /proc/PID/exe resolved,
// with " (deleted)" once the binary was replaced.
func Runs(p ipcguard.Proc, exe string) bool {
	if real, err := filepath.EvalSymlinks(exe); err == nil {
		exe = real
	}
	return p.Exe == exe || p.Exe == exe+" (deleted)"
}

// Truncate is b cut to n bytes, "..." marking a cut: enough of what a
// file or a command said to quote it in an error.
func Truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// Cmdline is pid's command line (its title, for a server that sets one),
// nil when it cannot be read.
func Cmdline(root string, pid int) []string {
	data, err := os.ReadFile(filepath.Join(root, strconv.Itoa(pid), "cmdline"))
	if err != nil || len(data) == 0 {
		return nil
	}
	return strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")
}

// CommOf is the command name the kernel shows for a binary: its base name
// cut to 15 bytes.
func CommOf(exe string) string {
	b := filepath.Base(exe)
	return b[:min(len(b), 15)]
}

// RunningExactly returns the live processes that run exe itself (see runs).
func RunningExactly(procs ipcguard.ProcTable, exe string) []ipcguard.Proc {
	var out []ipcguard.Proc
	for _, p := range procs.ByExe(exe) {
		if Runs(p, exe) {
			out = append(out, p)
		}
	}
	return out
}

// DefaultRoot is the /proc of the caller's PID namespace: what a root left
// empty means.
const DefaultRoot = "/proc"

// RootOr is root, the /proc a caller was given to read, or DefaultRoot
// when it was given none.
func RootOr(root string) string { return cmp.Or(root, DefaultRoot) }
