//go:build linux

package proc

import (
	"errors"
	"io/fs"
	"os"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/safe-restart/safe-restart/ipcguard"
)

// errNoSuchProcess is ESRCH: the process has exited and been reaped.
var errNoSuchProcess = unix.ESRCH

// PidfdOpen opens a pidfd (Linux 5.3) for pid, retrying on EINTR.
func PidfdOpen(pid int) (int, error) {
	fd, err := RetryEINTR(func() (int, error) { return unix.PidfdOpen(pid, 0) })
	if err != nil {
		return -1, os.NewSyscallError("pidfd_open", err)
	}
	return fd, nil
}

// RetryEINTR calls f until it fails with something other than EINTR.
func RetryEINTR[T any](f func() (T, error)) (T, error) {
	for {
		v, err := f()
		if !errors.Is(err, unix.EINTR) {
			return v, err
		}
	}
}

// RetryEINTRErr is RetryEINTR for a call that returns only an error.
func RetryEINTRErr(f func() error) error {
	_, err := RetryEINTR(func() (struct{}, error) { return struct{}{}, f() })
	return err
}

// CloseFD closes fd, ignoring the error (a descriptor of safe-restart's
// own, closed once).
func CloseFD(fd int) { _ = unix.Close(fd) }

// pollReadable polls fds for POLLIN up to d and reports which are ready.
// With no fds it sleeps d when wantSleep (processes watched through /proc),
// else returns at once.
func pollReadable(fds []int, d time.Duration, wantSleep bool) ([]bool, error) {
	if len(fds) == 0 {
		if wantSleep {
			time.Sleep(d) //permit:time.Sleep no descriptor to poll: the processes are read through /proc
		}
		return nil, nil
	}
	pfds := make([]unix.PollFd, len(fds))
	for i, fd := range fds {
		pfds[i] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	}
	deadline := time.Now().Add(d)
	if _, err := RetryEINTR(func() (int, error) {
		return unix.Poll(pfds, int(max(time.Until(deadline), 0)/time.Millisecond))
	}); err != nil {
		return nil, os.NewSyscallError("poll", err)
	}
	ready := make([]bool, len(fds))
	for i, p := range pfds {
		ready[i] = p.Revents&(unix.POLLIN|unix.POLLHUP|unix.POLLERR) != 0
	}
	return ready, nil
}

// pidfdSignal sends sig through a pidfd. ESRCH (already exited) is nil.
func pidfdSignal(fd int, sig syscall.Signal) error {
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
		return os.NewSyscallError("pidfd_send_signal", err)
	}
	return nil
}

// killPID is kill(2), for kernels without pidfds. ESRCH is nil.
func killPID(pid int, sig syscall.Signal) error {
	if err := unix.Kill(pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		return os.NewSyscallError("kill", err)
	}
	return nil
}

// errNoPidfd reports a kernel without pidfd_open (before 5.3).
var errNoPidfd = unix.ENOSYS

// setChildSubreaper makes this process the reaper of its orphaned
// descendants (prctl(2) PR_SET_CHILD_SUBREAPER): workers re-parented when
// their master dies stay this process's to see and to reap.
func setChildSubreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return os.NewSyscallError("prctl PR_SET_CHILD_SUBREAPER", err)
	}
	return nil
}

// reapNoHang collects pid's exit status if it has exited (wait4 with
// WNOHANG, retried on EINTR); done is false while it runs. A pid that is
// not this process's child is an error wrapping ECHILD.
func reapNoHang(pid int) (ws syscall.WaitStatus, done bool, err error) {
	got, err := RetryEINTR(func() (int, error) { return unix.Wait4(pid, (*unix.WaitStatus)(&ws), unix.WNOHANG, nil) })
	if err != nil {
		return ws, false, os.NewSyscallError("wait4", err)
	}
	return ws, got == pid, nil
}

// openRegular opens path for reading, without blocking, only when it is a
// regular file, and returns what it is. It looks through an O_PATH
// descriptor first, whose open has no effect on the file (a device's open
// never runs, a FIFO's never blocks), and reopens that same file through
// /proc/self/fd only when it is regular: nothing swapped in between is
// opened. For anything else the file is nil.
func openRegular(path string) (*os.File, fs.FileInfo, error) {
	fd, err := RetryEINTR(func() (int, error) { return unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0) })
	if err != nil {
		return nil, nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	self := "/proc/self/fd/" + strconv.Itoa(fd)
	fi, err := os.Stat(self)
	if err != nil || !fi.Mode().IsRegular() {
		return nil, fi, err
	}
	f, err := os.OpenFile(self, os.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	return f, fi, err
}

// StartedAt is when p started, to the clock tick: the kernel counts a
// start in ticks of CLOCK_BOOTTIME, whose offset from the realtime clock
// is read here to the nanosecond (ipcguard's Proc.Start takes the boot
// time from /proc/stat, in whole seconds). p.Start when a clock cannot be
// read.
func StartedAt(p ipcguard.Proc) time.Time {
	var rt, bt unix.Timespec
	if unix.ClockGettime(unix.CLOCK_REALTIME, &rt) != nil || unix.ClockGettime(unix.CLOCK_BOOTTIME, &bt) != nil {
		return p.Start
	}
	boot := time.Unix(rt.Unix()).Add(-time.Duration(bt.Nano()))
	return boot.Add(time.Duration(p.StartTicks) * (time.Second / userHZ))
}

// userHZ is the unit of /proc/PID/stat's start time on Linux (USER_HZ).
const userHZ = 100
