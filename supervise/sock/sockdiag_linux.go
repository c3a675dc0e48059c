//go:build linux

package sock

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/safe-restart/safe-restart/supervise/proc"
)

// Netlink sock_diag for unix sockets (linux/unix_diag.h), which
// golang.org/x/sys does not describe.
const (
	udiagShowPeer = 0x4 // UDIAG_SHOW_PEER
	unixDiagPeer  = 2   // UNIX_DIAG_PEER
	unixDiagReqSz = 24  // struct unix_diag_req
	unixDiagMsgSz = 16  // struct unix_diag_msg
)

// UnixPeerInode returns the inode of the peer of the unix socket whose
// inode is ino: for a connected client socket, the server's end, which
// has an inode (non-zero) only once a process accepted it.
func UnixPeerInode(ino uint64) (uint64, error) {
	req, r := diagRequest(unixDiagReqSz)
	ne := binary.NativeEndian
	r[0] = unix.AF_UNIX
	ne.PutUint32(r[4:], 0xffffffff) // every state
	ne.PutUint32(r[8:], uint32(ino))
	ne.PutUint32(r[12:], udiagShowPeer)
	ne.PutUint32(r[16:], 0xffffffff) // no cookie
	ne.PutUint32(r[20:], 0xffffffff)
	data, err := sockDiag(req)
	if err != nil {
		return 0, fmt.Errorf("sock_diag of unix socket %d: %w", ino, err)
	}
	if len(data) < unixDiagMsgSz {
		return 0, errors.New("sock_diag: short answer")
	}
	return peerAttr(data[unixDiagMsgSz:])
}

// diagRequest returns a sock_diag request for one socket (a netlink
// header, SOCK_DIAG_BY_FAMILY, and a body of size bytes), and its body.
func diagRequest(size int) (req, body []byte) {
	req = make([]byte, unix.NLMSG_HDRLEN+size)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST)
	return req, req[unix.NLMSG_HDRLEN:]
}

// sockDiag sends one sock_diag request (a netlink message, header
// included) and returns the payload of the answer.
func sockDiag(req []byte) ([]byte, error) {
	var answer []byte
	err := sockDiagEach(req, func(msg []byte) bool {
		answer = msg
		return false
	})
	if err == nil && answer == nil {
		err = errors.New("no answer")
	}
	return answer, err
}

// sockDiagEach sends a sock_diag request and calls each with the payload
// of every answer, until each returns false, the kernel says it is done
// (a dump), or an error; recvfrom is retried on EINTR.
func sockDiagEach(req []byte, each func([]byte) bool) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return os.NewSyscallError("socket(NETLINK_SOCK_DIAG)", err)
	}
	defer unix.Close(fd)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return os.NewSyscallError("sendto", err)
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := proc.RetryEINTR(func() (int, error) {
			n, _, err := unix.Recvfrom(fd, buf, 0)
			return n, err
		})
		if err != nil {
			return os.NewSyscallError("recvfrom", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return err
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return nil
			case unix.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if errno := int32(binary.NativeEndian.Uint32(m.Data)); errno != 0 {
						return unix.Errno(-errno)
					}
				}
				return nil
			case unix.SOCK_DIAG_BY_FAMILY:
				if !each(m.Data) {
					return nil
				}
			}
		}
	}
}

// peerAttr finds UNIX_DIAG_PEER among the attributes (struct rtattr:
// length, type, value, padded to 4 bytes); 0 when there is none.
func peerAttr(attrs []byte) (uint64, error) {
	ne := binary.NativeEndian
	for len(attrs) >= 4 {
		l, typ := int(ne.Uint16(attrs[0:])), ne.Uint16(attrs[2:])
		if l < 4 || l > len(attrs) {
			return 0, errors.New("sock_diag: malformed attribute")
		}
		if typ == unixDiagPeer && l >= 8 {
			return uint64(ne.Uint32(attrs[4:])), nil
		}
		attrs = attrs[min((l+3)&^3, len(attrs)):]
	}
	return 0, nil
}

// inetDiagReqSz is struct inet_diag_req_v2; inetDiagInodeOff is the
// offset of idiag_inode in struct inet_diag_msg (linux/inet_diag.h);
// tcpEstablished and tcpListen are TCP_ESTABLISHED and TCP_LISTEN
// (include/net/tcp_states.h).
const (
	inetDiagReqSz    = 56
	inetDiagInodeOff = 68
	tcpEstablished   = 1
	tcpListen        = 10
)

// TCPDump asks the kernel (a sock_diag dump) for family's TCP sockets in
// the states of the mask (1<<state each), on local port sport (any when
// 0: the kernel skips the others), and calls each with every answer, a
// struct inet_diag_msg.
func TCPDump(family uint8, states uint32, sport uint16, each func(msg []byte)) error {
	req, r := diagRequest(inetDiagReqSz)
	ne := binary.NativeEndian
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	r[0], r[1] = family, unix.IPPROTO_TCP
	ne.PutUint32(r[4:], states)
	binary.BigEndian.PutUint16(r[8:], sport) // inet_diag_sockid.idiag_sport
	return sockDiagEach(req, func(msg []byte) bool {
		each(msg)
		return true
	})
}

// addrLen is the length of family's addresses in a struct inet_diag_sockid
// (an IPv4 one fills the first 4 of its 16 bytes).
func addrLen(family uint8) int {
	if family == unix.AF_INET6 {
		return net.IPv6len
	}
	return net.IPv4len
}

// TCPAccepted returns the inodes of the established TCP connections whose
// local address is ip (any, when ip is unspecified: a wildcard listener's)
// and port, and that a process has accepted (a connection still in a
// listener's queue has no inode): IPv4 ones for an IPv4 ip, else both
// families (an IPv6 socket's IPv4 connections are v4-mapped).
func TCPAccepted(ip net.IP, port int) (map[uint64]bool, error) {
	out := map[uint64]bool{}
	families := []uint8{unix.AF_INET, unix.AF_INET6}
	if ip.To4() != nil {
		families = families[:1]
	}
	for _, family := range families {
		size := addrLen(family)
		err := TCPDump(family, 1<<tcpEstablished, uint16(port), func(msg []byte) {
			if len(msg) < inetDiagInodeOff+4 || int(binary.BigEndian.Uint16(msg[4:])) != port {
				return
			}
			if !ip.IsUnspecified() && !ip.Equal(net.IP(msg[8:8+size])) {
				return
			}
			if ino := binary.NativeEndian.Uint32(msg[inetDiagInodeOff:]); ino != 0 {
				out[uint64(ino)] = true
			}
		})
		if err != nil {
			return nil, fmt.Errorf("sock_diag dump of established TCP connections: %w", err)
		}
	}
	return out, nil
}

// tcpListening adds the listening TCP sockets of the caller's network
// namespace to out (inode to host:port, as parseListening writes them),
// from a sock_diag dump of listeners alone: the kernel then walks only its
// listening hash, where reading /proc/net/tcp walks every TCP socket of
// the machine (a loaded server has tens of thousands in TIME_WAIT; each
// read then took tens of milliseconds, several times per restart).
func tcpListening(out map[uint64]string) error {
	for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		size := addrLen(family)
		err := TCPDump(family, 1<<tcpListen, 0, func(msg []byte) {
			if len(msg) < inetDiagInodeOff+4 {
				return
			}
			ip := net.IP(slices.Clone(msg[8 : 8+size]))
			port := int(binary.BigEndian.Uint16(msg[4:]))
			out[uint64(binary.NativeEndian.Uint32(msg[inetDiagInodeOff:]))] = net.JoinHostPort(ip.String(), strconv.Itoa(port))
		})
		if err != nil {
			return fmt.Errorf("sock_diag dump of listening TCP sockets: %w", err)
		}
	}
	return nil
}

// TCPInode returns the inode of the TCP socket whose local address is
// local and remote address remote (0 while it waits in a listener's queue
// for accept(2)), asking the kernel for that one socket (sock_diag), or an
// error wrapping unix.ENOENT when there is none.
func TCPInode(local, remote *net.TCPAddr) (uint64, error) {
	if local.IP.To4() != nil && remote.IP.To4() != nil {
		// Also an IPv4 connection a dual-stack IPv6 socket accepted: the
		// kernel keeps v4-mapped connections with the IPv4 ones (tested).
		return tcpInodeIn(unix.AF_INET, local, remote)
	}
	return tcpInodeIn(unix.AF_INET6, local, remote)
}

// tcpInodeIn is TCPInode in one address family.
func tcpInodeIn(family uint8, local, remote *net.TCPAddr) (uint64, error) {
	addr := func(ip net.IP) []byte {
		if family == unix.AF_INET {
			return ip.To4()
		}
		return ip.To16()
	}
	req, r := diagRequest(inetDiagReqSz)
	ne := binary.NativeEndian
	r[0], r[1] = family, unix.IPPROTO_TCP
	ne.PutUint32(r[4:], 0xffffffff) // every state
	id := r[8:]                     // struct inet_diag_sockid
	binary.BigEndian.PutUint16(id[0:], uint16(local.Port))
	binary.BigEndian.PutUint16(id[2:], uint16(remote.Port))
	copy(id[4:20], addr(local.IP))
	copy(id[20:36], addr(remote.IP))
	ne.PutUint32(id[40:], 0xffffffff) // no cookie
	ne.PutUint32(id[44:], 0xffffffff)
	data, err := sockDiag(req)
	if err != nil {
		return 0, fmt.Errorf("sock_diag of TCP %s-%s: %w", local, remote, err)
	}
	if len(data) < inetDiagInodeOff+4 {
		return 0, errors.New("sock_diag: short answer")
	}
	return uint64(ne.Uint32(data[inetDiagInodeOff:])), nil
}
