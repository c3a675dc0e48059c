//go:build linux

package nstest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrGone is returned when the process a Proc identifies no longer exists
// (or its PID now belongs to another process).
var ErrGone = errors.New("process is gone")

// Proc identifies one process by PID and start time, so that a recycled PID
// is never mistaken for it. Processes are never identified by name.
type Proc struct {
	PID   int
	Start uint64 // field 22 of /proc/PID/stat: start time in clock ticks after boot
}

// ProcStat is the part of /proc/PID/stat the helpers need.
type ProcStat struct {
	Proc
	PPID  int
	State byte // R, S, D, Z, X, …: Z (zombie) and X (dead) mean exited
	Comm  string
}

func (p Proc) String() string { return fmt.Sprintf("pid %d (start %d)", p.PID, p.Start) }

// Exited reports whether the state is Z or X. Zombies are exited processes
// nobody has reaped yet; inside InPrivateNamespaces the test process is
// PID 1 and inherits every orphan, so zombies are common there.
func (s ProcStat) Exited() bool { return s.State == 'Z' || s.State == 'X' }

// Stat reads /proc/PID/stat.
func Stat(pid int) (ProcStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			return ProcStat{}, ErrGone
		}
		return ProcStat{}, err
	}
	return parseStat(pid, b)
}

func parseStat(pid int, b []byte) (ProcStat, error) {
	open, close := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || close < open {
		return ProcStat{}, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[close+1:]))
	// f[0] is field 3 (state); field n is f[n-3].
	if len(f) < 20 || len(f[0]) != 1 {
		return ProcStat{}, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	ppid, err1 := strconv.Atoi(f[1])
	start, err2 := strconv.ParseUint(f[19], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return ProcStat{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return ProcStat{Proc: Proc{PID: pid, Start: start}, PPID: ppid, State: f[0][0], Comm: string(b[open+1 : close])}, nil
}

// Identify returns the Proc currently running as pid.
func Identify(pid int) (Proc, error) {
	s, err := Stat(pid)
	return s.Proc, err
}

// Stat returns the current stat of p, or ErrGone if p no longer exists.
func (p Proc) Stat() (ProcStat, error) {
	s, err := Stat(p.PID)
	if err != nil {
		return s, err
	}
	if s.Start != p.Start {
		return s, ErrGone
	}
	return s, nil
}

// Alive reports whether p exists and has not exited (zombies count as
// exited).
func (p Proc) Alive() bool {
	s, err := p.Stat()
	return err == nil && !s.Exited()
}

// userHZ is the unit of /proc/PID/stat times; it is 100 on every Linux ABI.
const userHZ = 100

// StartTime converts p.Start (clock ticks of CLOCK_BOOTTIME) to wall-clock
// time, with the 10ms resolution of the ticks. It maps boot time to wall
// time through CLOCK_BOOTTIME and CLOCK_REALTIME now, which is more precise
// than /proc/stat's btime (whole seconds) but follows later changes of the
// wall clock.
func (p Proc) StartTime() (time.Time, error) {
	var bt unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &bt); err != nil {
		return time.Time{}, err
	}
	now := time.Now()
	boot := now.Add(-time.Duration(bt.Nano()))
	return boot.Add(time.Duration(p.Start) * time.Second / userHZ), nil
}

// pidfd opens a pidfd for p after checking that the PID still belongs to it.
func (p Proc) pidfd() (int, error) {
	fd, err := unix.PidfdOpen(p.PID, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return -1, ErrGone
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

// Signal sends sig to p through a pidfd; ErrGone if p no longer exists.
// Signalling a zombie succeeds and does nothing.
func (p Proc) Signal(sig syscall.Signal) error {
	fd, err := p.pidfd()
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return ErrGone
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
// namespace's PID 1): reaping such a process would make its Wait fail. This
// is why nstest has no blanket reaper: the kernel cannot tell orphans that
// were re-parented to PID 1 from children started by code that will call
// Wait later.
func (p Proc) Reap() error {
	s, err := p.Stat()
	if err != nil || !s.Exited() || s.PPID != os.Getpid() {
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

// Processes lists every process visible in /proc. Entries that vanish while
// it reads are left out.
func Processes() []ProcStat {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []ProcStat
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if s, err := Stat(pid); err == nil {
			out = append(out, s)
		}
	}
	return out
}

// ChildrenOf lists the processes whose parent is ppid (exited ones included).
func ChildrenOf(ppid int) []ProcStat {
	var out []ProcStat
	for _, s := range Processes() {
		if s.PPID == ppid {
			out = append(out, s)
		}
	}
	return out
}

// WithEnv lists the processes whose initial environment contains the exact
// entry kv ("KEY=value"). Zombies have no readable environment and are not
// listed.
func WithEnv(kv string) []ProcStat {
	want := []byte(kv)
	var out []ProcStat
	for _, s := range Processes() {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(s.PID) + "/environ")
		if err != nil {
			continue
		}
		for _, e := range bytes.Split(b, []byte{0}) {
			if bytes.Equal(e, want) {
				// Re-check the identity: the PID may have been recycled
				// between Stat and reading environ.
				if s2, err := s.Proc.Stat(); err == nil {
					out = append(out, s2)
				}
				break
			}
		}
	}
	return out
}
