//go:build linux

package supervise

import (
	"errors"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// errNoSuchProcess is ESRCH: the process has exited and been reaped.
var errNoSuchProcess = unix.ESRCH

// pidfdOpen opens a pidfd (Linux 5.3) for pid, retrying on EINTR.
func pidfdOpen(pid int) (int, error) {
	for {
		fd, err := unix.PidfdOpen(pid, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return -1, os.NewSyscallError("pidfd_open", err)
		}
		return fd, nil
	}
}

func closeFD(fd int) { _ = unix.Close(fd) }

// pollReadable polls fds for POLLIN up to d and reports which are ready.
// With no fds it sleeps d when wantSleep (processes watched through /proc),
// else returns at once.
func pollReadable(fds []int, d time.Duration, wantSleep bool) ([]bool, error) {
	if len(fds) == 0 {
		if wantSleep {
			time.Sleep(d)
		}
		return nil, nil
	}
	pfds := make([]unix.PollFd, len(fds))
	for i, fd := range fds {
		pfds[i] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	}
	deadline := time.Now().Add(d)
	for {
		_, err := unix.Poll(pfds, int(max(time.Until(deadline), 0)/time.Millisecond))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, os.NewSyscallError("poll", err)
		}
		break
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
