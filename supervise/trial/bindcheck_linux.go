//go:build linux

package trial

import (
	"fmt"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"

	"github.com/safe-restart/safe-restart/supervise/proc"
)

// errAddrInUse is EADDRINUSE.
var errAddrInUse = unix.EADDRINUSE

// tryBind binds a TCP socket to addr with SO_REUSEADDR, as the servers
// do, and closes it: it never listens, so no connection can reach it.
func tryBind(addr string) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return fmt.Errorf("bad listen address %q: %w", addr, err)
	}
	family, sa := unix.AF_INET6, unix.Sockaddr(&unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()})
	if ap.Addr().Unmap().Is4() && !ap.Addr().Is4In6() {
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return os.NewSyscallError("setsockopt", err)
	}
	return os.NewSyscallError("bind", proc.RetryEINTRErr(func() error { return unix.Bind(fd, sa) }))
}
