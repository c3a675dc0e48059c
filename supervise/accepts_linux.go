//go:build linux

package supervise

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Netlink sock_diag for unix sockets (linux/unix_diag.h), which
// golang.org/x/sys does not describe.
const (
	udiagShowPeer = 0x4 // UDIAG_SHOW_PEER
	unixDiagPeer  = 2   // UNIX_DIAG_PEER
	unixDiagReqSz = 24  // struct unix_diag_req
	unixDiagMsgSz = 16  // struct unix_diag_msg
)

// unixPeerInode returns the inode of the peer of the unix socket whose
// inode is ino: for a connected client socket, the server's end, which
// has an inode (non-zero) only once a process accepted it.
func unixPeerInode(ino uint64) (uint64, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return 0, os.NewSyscallError("socket(NETLINK_SOCK_DIAG)", err)
	}
	defer unix.Close(fd)
	req := make([]byte, unix.NLMSG_HDRLEN+unixDiagReqSz)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST)
	r := req[unix.NLMSG_HDRLEN:]
	r[0] = unix.AF_UNIX
	ne.PutUint32(r[4:], 0xffffffff) // every state
	ne.PutUint32(r[8:], uint32(ino))
	ne.PutUint32(r[12:], udiagShowPeer)
	ne.PutUint32(r[16:], 0xffffffff) // no cookie
	ne.PutUint32(r[20:], 0xffffffff)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, os.NewSyscallError("sendto(sock_diag)", err)
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return 0, os.NewSyscallError("recvfrom(sock_diag)", err)
	}
	msgs, err := syscall.ParseNetlinkMessage(buf[:n])
	if err != nil {
		return 0, err
	}
	for _, m := range msgs {
		if m.Header.Type == unix.NLMSG_ERROR && len(m.Data) >= 4 {
			if errno := int32(ne.Uint32(m.Data)); errno != 0 {
				return 0, fmt.Errorf("sock_diag of unix socket %d: %w", ino, unix.Errno(-errno))
			}
			continue
		}
		if m.Header.Type == unix.SOCK_DIAG_BY_FAMILY && len(m.Data) >= unixDiagMsgSz {
			return peerAttr(m.Data[unixDiagMsgSz:])
		}
	}
	return 0, errors.New("sock_diag: no answer")
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
