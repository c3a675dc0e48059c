//go:build linux

package supervise

import (
	"encoding/binary"
	"errors"
	"os"

	"golang.org/x/sys/unix"

	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/sock"
)

// Classic BPF ancillary load of a random number (linux/filter.h), which
// golang.org/x/sys does not describe.
const (
	skfAdOff    = 0xfffff000 // SKF_AD_OFF (-0x1000)
	skfAdRandom = 56         // SKF_AD_RANDOM
)

// steerProgram is a reuseport program for a group whose first k sockets
// are the old master's and the next m the new master's: it returns the
// index of one of the new master's, at random when there are several.
// An index past the group's end (once the old sockets left it) makes the
// kernel fall back to its hash.
func steerProgram(k, m int) []unix.SockFilter {
	if m == 1 {
		return []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: uint32(k)}}
	}
	return []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: skfAdOff + skfAdRandom},
		{Code: unix.BPF_ALU | unix.BPF_MOD | unix.BPF_K, K: uint32(m)},
		{Code: unix.BPF_ALU | unix.BPF_ADD | unix.BPF_K, K: uint32(k)},
		{Code: unix.BPF_RET | unix.BPF_A},
	}
}

// attachSteering attaches steerProgram(k, m) to the reuseport group of
// the socket fd.
func attachSteering(fd, k, m int) error {
	prog := steerProgram(k, m)
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	return os.NewSyscallError("setsockopt SO_ATTACH_REUSEPORT_CBPF",
		unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_CBPF, &fprog))
}

// detachSteering removes the program of the reuseport group of fd, and
// reports whether there was one: ENOENT says the group has none, EINVAL
// that the socket is in no group (it lacks SO_REUSEPORT).
func detachSteering(fd int) (bool, error) {
	err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DETACH_REUSEPORT_BPF, 0)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EINVAL) {
		return false, nil
	}
	return err == nil, os.NewSyscallError("setsockopt SO_DETACH_REUSEPORT_BPF", err)
}

// canSteer proves that this kernel, and any seccomp filter on
// safe-restart, allows both reuseport programs steerProgram writes: it
// attaches them to a fresh socket of its own.
func canSteer() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	defer proc.CloseFD(fd)
	if err := setReusePort(fd, true); err != nil {
		return err
	}
	return errors.Join(attachSteering(fd, 0, 1), attachSteering(fd, 0, 2))
}

// setReusePort sets or clears SO_REUSEPORT on fd. On a listening socket
// that lacks it, setting it lets a socket with SO_REUSEPORT of the same
// user bind beside it, the two then forming one reuseport group.
func setReusePort(fd int, on bool) error {
	v := 0
	if on {
		v = 1
	}
	return os.NewSyscallError("setsockopt SO_REUSEPORT", unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, v))
}

// acceptQueue returns how many connections wait in the accept queue of
// the listening TCP socket fd (TCP_INFO's tcpi_unacked of a listener).
func acceptQueue(fd int) (int, error) {
	ti, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return 0, os.NewSyscallError("getsockopt TCP_INFO", err)
	}
	return int(ti.Unacked), nil
}

// halfOpen returns the cookies of the connections still in their
// handshake (SYN_RECV) whose local port is one of ports, asking the
// kernel (sock_diag) in both address families.
func halfOpen(ports map[int]bool) (map[uint64]bool, error) {
	out := map[uint64]bool{}
	for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		if err := dumpSynRecv(family, ports, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// dumpSynRecv adds to out the cookies of family's SYN_RECV sockets whose
// local port is one of ports.
func dumpSynRecv(family uint8, ports map[int]bool, out map[uint64]bool) error {
	return sock.TCPDump(family, 1<<tcpSynRecv, 0, func(msg []byte) {
		if len(msg) >= inetDiagCookieOff+8 && ports[int(binary.BigEndian.Uint16(msg[4:]))] {
			out[binary.NativeEndian.Uint64(msg[inetDiagCookieOff:])] = true
		}
	})
}

// inetDiagCookieOff is the offset of idiag_cookie in struct inet_diag_msg;
// tcpSynRecv is TCP_SYN_RECV (include/net/tcp_states.h), which a dump
// asking for it extends to the connections a listener has not yet
// completed (request sockets).
const (
	inetDiagCookieOff = 44
	tcpSynRecv        = 3
)
