//go:build linux

package sock

import (
	"os"

	"golang.org/x/sys/unix"

	"github.com/safe-restart/safe-restart/supervise/proc"
)

// ReusePort reports whether the socket pid holds at fd has
// SO_REUSEPORT, through a copy taken with pidfd_getfd (Linux 5.6; needs
// the right to ptrace pid).
func ReusePort(pid, fd int) (bool, error) {
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
	return ReusePortOn(dup)
}

// ReusePortOn reports whether fd has SO_REUSEPORT.
func ReusePortOn(fd int) (bool, error) {
	v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT)
	return v != 0, os.NewSyscallError("getsockopt SO_REUSEPORT", err)
}
