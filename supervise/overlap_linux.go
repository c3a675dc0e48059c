//go:build linux

package supervise

import (
	"os"

	"golang.org/x/sys/unix"

	"github.com/safe-restart/safe-restart/supervise/proc"
)

// sockReusePort reports whether the socket pid holds at fd has
// SO_REUSEPORT, through a copy taken with pidfd_getfd (Linux 5.6; needs
// the right to ptrace pid).
func sockReusePort(pid, fd int) (bool, error) {
	pfd, err := proc.PidfdOpen(pid)
	if err != nil {
		return false, err
	}
	defer proc.CloseFD(pfd)
	dup, err := unix.PidfdGetfd(pfd, fd, 0)
	if err != nil {
		return false, os.NewSyscallError("pidfd_getfd", err)
	}
	defer proc.CloseFD(dup)
	return reusePortOn(dup)
}
