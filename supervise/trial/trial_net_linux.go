//go:build linux

package trial

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// loopbackEverywhere brings lo up and makes every address local to it
// (local routes for 0.0.0.0/0 and ::/0, the "AnyIP" routes): a server
// configured to listen on this machine's public address binds it in the
// trial's namespace, and a connection to it reaches the trial's listener.
// IPv6 is best effort (it may be disabled).
func loopbackEverywhere() error {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		return err
	}
	if err := linkUp("lo"); err != nil {
		return err
	}
	if err := addLocalRoute(unix.AF_INET, lo.Index); err != nil {
		return fmt.Errorf("local route 0.0.0.0/0 on lo: %w", err)
	}
	_ = addLocalRoute(unix.AF_INET6, lo.Index)
	return nil
}

// linkUp sets IFF_UP on the interface name.
func linkUp(name string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return os.NewSyscallError("SIOCGIFFLAGS", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return os.NewSyscallError("SIOCSIFFLAGS", unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr))
}

// addLocalRoute is `ip route add local DEFAULT dev IFINDEX table local`
// through rtnetlink (rtnetlink(7)): an RTM_NEWROUTE request, acknowledged.
func addLocalRoute(family, ifindex int) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	const size = unix.SizeofNlMsghdr + unix.SizeofRtMsg + unix.SizeofRtAttr + 4
	b := make([]byte, size)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], size)
	ne.PutUint16(b[4:], unix.RTM_NEWROUTE)
	ne.PutUint16(b[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK|unix.NLM_F_CREATE|unix.NLM_F_EXCL)
	ne.PutUint32(b[8:], 1) // sequence number
	rt := b[unix.SizeofNlMsghdr:]
	rt[0] = byte(family) // dst_len, src_len, tos stay 0: the default route
	rt[4], rt[5], rt[6], rt[7] = unix.RT_TABLE_LOCAL, unix.RTPROT_BOOT, unix.RT_SCOPE_HOST, unix.RTN_LOCAL
	attr := rt[unix.SizeofRtMsg:]
	ne.PutUint16(attr[0:], unix.SizeofRtAttr+4)
	ne.PutUint16(attr[2:], unix.RTA_OIF)
	ne.PutUint32(attr[4:], uint32(ifindex))
	if err := unix.Sendto(fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return os.NewSyscallError("sendto", err)
	}
	return netlinkAck(fd)
}

// netlinkAck reads the NLMSG_ERROR that acknowledges a request: error 0 is
// success, else a negative errno.
func netlinkAck(fd int) error {
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return os.NewSyscallError("recvfrom", err)
	}
	if n < unix.SizeofNlMsghdr+4 || binary.NativeEndian.Uint16(buf[4:]) != unix.NLMSG_ERROR {
		return fmt.Errorf("rtnetlink: unexpected answer (%d bytes)", n)
	}
	if errno := int32(binary.NativeEndian.Uint32(buf[unix.SizeofNlMsghdr:])); errno != 0 {
		return syscall.Errno(-errno)
	}
	return nil
}

// nonlocalBind lets the trial bind addresses no interface has (IPv6 does
// not consult the local routes for bind, IPv4 does; both are set): a
// server that listens on this machine's [2001:db8::5]:443 binds it in the
// trial. Needs the trial's own /proc mounted (net.* is per namespace).
func nonlocalBind() error {
	for _, f := range []string{"ipv4/ip_nonlocal_bind", "ipv6/ip_nonlocal_bind"} {
		err := os.WriteFile(filepath.Join("/proc/sys/net", f), []byte("1"), 0)
		if err != nil && f == "ipv4/ip_nonlocal_bind" {
			return err
		}
	}
	return nil
}
