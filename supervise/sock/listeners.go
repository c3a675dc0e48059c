package sock

import (
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/safe-restart/safe-restart/supervise/proc"
)

// Listener is a listening TCP or unix stream socket held by a process.
type Listener struct {
	// Addr is host:port (127.0.0.1:80, [::]:443) for TCP, the socket's
	// path (beginning with "/", or "@" for an abstract name) for unix.
	Addr  string `json:"addr"`
	Inode uint64 `json:"inode"` // socket inode, shared by every process holding it
}

// Network is "unix" for a unix socket's path, else "tcp".
func (l Listener) Network() string {
	if strings.HasPrefix(l.Addr, "/") || strings.HasPrefix(l.Addr, "@") {
		return "unix"
	}
	return "tcp"
}

// ReadListening returns the listening TCP and unix stream sockets of the
// network namespace procRoot/net shows, by inode: TCP from a sock_diag
// dump of listeners when procRoot is "/proc" (the caller's namespace; see
// tcpListening), else from procRoot/net/tcp and tcp6; unix from
// procRoot/net/unix.
func ReadListening(procRoot string) (map[uint64]string, error) {
	out := map[uint64]string{}
	if procRoot != proc.DefaultRoot || tcpListening(out) != nil {
		if err := readTCPListening(procRoot, out); err != nil {
			return nil, err
		}
	}
	data, err := os.ReadFile(filepath.Join(procRoot, "net", "unix"))
	if err != nil {
		return out, nil // no unix sockets in view
	}
	return out, parseUnixListening(string(data), out)
}

// readTCPListening adds the listening TCP sockets of procRoot/net/tcp and
// tcp6 to out.
//
//	sl  local_address rem_address   st ... uid  timeout inode
//	 0: 0100007F:1F90 00000000:0000 0A ...   0        0 1568 1 ...
func readTCPListening(procRoot string, out map[uint64]string) error {
	for _, f := range []string{"tcp", "tcp6"} {
		data, err := os.ReadFile(filepath.Join(procRoot, "net", f))
		if err != nil {
			continue // no IPv6, or no network namespace view: nothing listens there
		}
		if err := parseListening(f, string(data), out); err != nil {
			return err
		}
	}
	return nil
}

// parseUnixListening adds the listening unix stream sockets that have a
// name: flags with __SO_ACCEPTCON (0x10000), type SOCK_STREAM (1).
//
//	Num       RefCount Protocol Flags    Type St Inode Path
//	0000...:  00000002 00000000 00010000 0001 01 20731 /run/php/php8.2-fpm.sock
func parseUnixListening(data string, out map[uint64]string) error {
	lines := strings.Split(data, "\n")
	for n, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue // unnamed
		}
		flags, err1 := strconv.ParseUint(f[3], 16, 32)
		typ, err2 := strconv.ParseUint(f[4], 16, 16)
		inode, err3 := strconv.ParseUint(f[6], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			return fmt.Errorf("/proc/net/unix line %d: malformed: %q", n+2, line)
		}
		if flags&0x10000 == 0 || typ != 1 {
			continue
		}
		out[inode] = strings.Join(f[7:], " ")
	}
	return nil
}

// parseListening adds the LISTEN rows (st 0A) of one /proc/net/tcp* file.
func parseListening(name, data string, out map[uint64]string) error {
	lines := strings.Split(data, "\n")
	for n, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) < 10 || f[3] != "0A" {
			continue
		}
		addr, err := parseHexAddr(f[1])
		if err != nil {
			return fmt.Errorf("/proc/net/%s line %d: %w", name, n+2, err)
		}
		inode, err := strconv.ParseUint(f[9], 10, 64)
		if err != nil {
			return fmt.Errorf("/proc/net/%s line %d: inode: %w", name, n+2, err)
		}
		out[inode] = addr
	}
	return nil
}

// parseHexAddr decodes "0100007F:1F90" (IPv4, 32-bit words in host byte
// order, little-endian here) or the 32-hex-digit IPv6 form.
func parseHexAddr(s string) (string, error) {
	h, p, ok := strings.Cut(s, ":")
	port, err := strconv.ParseUint(p, 16, 16)
	if !ok || err != nil {
		return "", fmt.Errorf("bad address %q", s)
	}
	raw, err := hex.DecodeString(h)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return "", fmt.Errorf("bad address %q", s)
	}
	for i := 0; i < len(raw); i += 4 { // each 32-bit word is little-endian
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	return net.JoinHostPort(net.IP(raw).String(), strconv.Itoa(int(port))), nil
}

// ListenersOf returns the listening sockets among pid's fds.
func ListenersOf(procRoot string, pid int, listening map[uint64]string) []Listener {
	var out []Listener
	for _, l := range ListenerFDs(procRoot, pid, listening) {
		out = append(out, l.Listener)
	}
	return out
}

// listenerFD is a listening socket and the fd number a process holds it at.
type listenerFD struct {
	Listener
	FD int
}

// ListenerFDs returns the listening sockets among pid's fds, with their
// fd numbers.
func ListenerFDs(procRoot string, pid int, listening map[uint64]string) []listenerFD {
	var out []listenerFD
	for _, s := range SocketFDs(procRoot, pid) {
		if addr, ok := listening[s.Inode]; ok {
			out = append(out, listenerFD{Listener{Addr: addr, Inode: s.Inode}, s.FD})
		}
	}
	return out
}

// SocketFD is one of a process's fds that refers to a socket.
type SocketFD struct {
	FD    int
	Inode uint64
}

// SocketFDs returns pid's fds that refer to sockets, in fd order of
// /proc/PID/fd (none when it cannot be read).
func SocketFDs(procRoot string, pid int) []SocketFD {
	dir := filepath.Join(procRoot, strconv.Itoa(pid), "fd")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []SocketFD
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil || !strings.HasPrefix(target, "socket:[") {
			continue
		}
		inode, err1 := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]"), 10, 64)
		fd, err2 := strconv.Atoi(e.Name())
		if err1 == nil && err2 == nil {
			out = append(out, SocketFD{FD: fd, Inode: inode})
		}
	}
	return out
}

// ConnInode returns the inode of c's socket.
func ConnInode(c net.Conn) (uint64, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0, fmt.Errorf("%T has no socket", c)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var st syscall.Stat_t
	var serr error
	if err := raw.Control(func(fd uintptr) { serr = syscall.Fstat(int(fd), &st) }); err != nil {
		return 0, err
	}
	return st.Ino, serr
}

// Addrs returns the listeners' addresses.
func Addrs(ls []Listener) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.Addr
	}
	return out
}

// Conflicts reports whether two host:port addresses cannot both be bound
// without SO_REUSEPORT: the same port, and the same IP or a wildcard.
func Conflicts(a, b string) bool {
	ah, ap, err1 := net.SplitHostPort(a)
	bh, bp, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || ap != bp {
		return false
	}
	wild := func(h string) bool { return h == "0.0.0.0" || h == "::" || h == "" }
	return ah == bh || wild(ah) || wild(bh)
}

// AcceptedOn returns the inodes of the connections some process accepted
// on the TCP listener l (its address and port; any local address for a
// wildcard listener; see TCPAccepted); none for a unix listener, an error
// when the kernel cannot say.
func AcceptedOn(l Listener) (map[uint64]bool, error) {
	if l.Network() != "tcp" {
		return map[uint64]bool{}, nil
	}
	host, p, err := net.SplitHostPort(l.Addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.Atoi(p)
	ip := net.ParseIP(host)
	if err != nil || ip == nil {
		return nil, fmt.Errorf("listener %q: not an IP address and port", l.Addr)
	}
	return TCPAccepted(ip, port)
}
