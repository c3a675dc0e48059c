//go:build linux

package proctest

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/safe-restart/safe-restart/ipcguard"
)

// procRoot is where the helpers read processes: the /proc of this process's
// PID namespace (inside nstest, the private one).
const procRoot = "/proc"

// ErrGone is returned when the process a Proc identifies no longer exists
// (or its PID now belongs to another process). It is ipcguard.ErrNoProcess,
// so that errors of Stat match it too; compare with errors.Is.
var ErrGone = ipcguard.ErrNoProcess

// Proc identifies one process by PID and start time (field 22 of
// /proc/PID/stat, in clock ticks after boot), so that a recycled PID is never
// mistaken for it.
type Proc ipcguard.ProcKey

// Of returns the identity of the process p describes.
func Of(p ipcguard.Proc) Proc { return Proc(p.Key()) }

func (p Proc) String() string { return fmt.Sprintf("pid %d (start %d)", p.PID, p.StartTicks) }

// Stat reads the process running as pid now (ipcguard.ReadProc of /proc).
// A process that does not exist is an error wrapping ErrGone.
func Stat(pid int) (ipcguard.Proc, error) { return ipcguard.ReadProc(procRoot, pid) }

// Identify returns the Proc currently running as pid.
func Identify(pid int) (Proc, error) {
	s, err := Stat(pid)
	return Of(s), err
}

// Stat returns the current state of p, or an error wrapping ErrGone if p no
// longer exists.
func (p Proc) Stat() (ipcguard.Proc, error) {
	s, err := Stat(p.PID)
	if err != nil {
		return s, err
	}
	if s.StartTicks != p.StartTicks {
		return s, fmt.Errorf("%w: %v now runs another process", ErrGone, p)
	}
	return s, nil
}

// Alive reports whether p exists and has not exited (zombies count as
// exited).
func (p Proc) Alive() bool {
	s, err := p.Stat()
	return err == nil && s.Alive()
}

// pidfd opens a pidfd for p after checking that the PID still belongs to it.
func (p Proc) pidfd() (int, error) {
	fd, err := unix.PidfdOpen(p.PID, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return -1, fmt.Errorf("%w: pidfd_open %v", ErrGone, p)
		}
		return -1, fmt.Errorf("pidfd_open %d: %w", p.PID, err)
	}
	// The pidfd refers to whatever ran as PID when it was opened; if that is
	// still our process now, it was then too.
	if _, err := p.Stat(); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// Signal sends sig to p through a pidfd; an error wrapping ErrGone if p no
// longer exists. Signalling a zombie succeeds and does nothing.
func (p Proc) Signal(sig syscall.Signal) error {
	fd, err := p.pidfd()
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("%w: signal %v to %v", ErrGone, sig, p)
		}
		return fmt.Errorf("pidfd_send_signal %v to %d: %w", sig, p.PID, err)
	}
	return nil
}

// WaitExited blocks until p has exited (a zombie counts) or the deadline
// passes. It waits on a pidfd, it does not poll /proc.
func (p Proc) WaitExited(deadline time.Time) error {
	fd, err := p.pidfd()
	if errors.Is(err, ErrGone) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for {
		ms := time.Until(deadline).Milliseconds()
		if ms <= 0 {
			return fmt.Errorf("%v has not exited by the deadline", p)
		}
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, int(min(ms, 1<<30)))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("poll pidfd of %d: %w", p.PID, err)
		}
		if n > 0 {
			return nil
		}
	}
}

// Kill sends SIGKILL to p and waits (on a pidfd) until it has exited.
// A process that is already gone is not an error.
func (p Proc) Kill(deadline time.Time) error {
	if err := p.Signal(syscall.SIGKILL); err != nil {
		if errors.Is(err, ErrGone) {
			return nil
		}
		return err
	}
	return p.WaitExited(deadline)
}

// Reap collects p's exit status if p is a zombie child of this process, so
// it stops showing up (as state Z) in /proc. It does nothing for processes
// that are alive, gone or not our children.
//
// Call it only for processes this process did not start through os/exec or
// os.StartProcess (for instance daemons that were re-parented to the
// namespace's PID 1): reaping such a process would make its Wait fail.
func (p Proc) Reap() error {
	s, err := p.Stat()
	if err != nil || s.Alive() || s.PPID != os.Getpid() {
		return nil
	}
	fd, err := p.pidfd()
	if err != nil {
		return nil
	}
	defer unix.Close(fd)
	var info unix.Siginfo
	err = unix.Waitid(unix.P_PIDFD, fd, &info, unix.WEXITED|unix.WNOHANG, nil)
	if err != nil && !errors.Is(err, unix.ECHILD) {
		return fmt.Errorf("waitid %d: %w", p.PID, err)
	}
	return nil
}

// Processes lists every process visible in /proc (ipcguard.ReadProcTable),
// sorted by PID; nil if /proc cannot be read. Processes that vanish while it
// reads are left out.
func Processes() []ipcguard.Proc {
	tab, err := ipcguard.ReadProcTable(procRoot)
	if err != nil {
		return nil
	}
	out := make([]ipcguard.Proc, 0, len(tab.ByPID))
	for _, p := range tab.ByPID {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b ipcguard.Proc) int { return cmp.Compare(a.PID, b.PID) })
	return out
}

// ChildrenOf lists the processes whose parent is ppid (exited ones included).
func ChildrenOf(ppid int) []ipcguard.Proc {
	return slices.DeleteFunc(Processes(), func(p ipcguard.Proc) bool { return p.PPID != ppid })
}

// WithEnv lists the processes whose initial environment contains the exact
// entry kv ("KEY=value"). Zombies have no readable environment and are not
// listed.
func WithEnv(kv string) []ipcguard.Proc {
	var out []ipcguard.Proc
	for _, p := range Processes() {
		b, err := os.ReadFile(procRoot + "/" + strconv.Itoa(p.PID) + "/environ")
		if err != nil || !slices.Contains(strings.Split(string(b), "\x00"), kv) {
			continue
		}
		// Re-check the identity: the PID may have been recycled between
		// the scan and reading environ.
		if p2, err := Of(p).Stat(); err == nil {
			out = append(out, p2)
		}
	}
	return out
}

// CopySelf copies the running test binary into dir and returns the copy's
// path: a helper process run from it does not run its parent's binary, as
// a server's master does not (a child of a process running the same
// binary is taken for a worker).
func CopySelf(t testing.TB, dir string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, filepath.Base(self)+".copy")
	if err := os.WriteFile(path, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}
