package trial

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/sock"
	"github.com/safe-restart/safe-restart/supervise/verify"
)

// checkBinds binds (without listening), in this network namespace, each
// TCP address of addrs that master does not already hold, and fails with
// ErrCannotBind naming the process that holds one; a unix socket path
// needs its directory (php-fpm's test passes a pool whose socket
// directory does not exist, and its start fails to bind). Sockets of master's
// tree are its own (nginx's reuseport gives each worker its own). A trial start runs in a
// network namespace of its own, where every port is free: this is the
// part of its proof only this namespace can give.
func checkBinds(root string, master ipcguard.Proc, exe string, addrs []string) error {
	listening, err := sock.ReadListening(root)
	if err != nil {
		return err
	}
	own, err := treeListeners(root, master, exe, listening)
	if err != nil {
		return err
	}
	for _, a := range addrs {
		if strings.HasPrefix(a, "@") || slices.ContainsFunc(own, func(l sock.Listener) bool { return l.Addr == a }) {
			continue
		}
		if strings.HasPrefix(a, "/") {
			if err := socketDirExists(a); err != nil {
				return err
			}
			continue
		}
		err := tryBind(a)
		if err == nil {
			continue
		}
		if !errors.Is(err, errAddrInUse) {
			return fmt.Errorf("%w: %s: %w", ErrCannotBind, a, err)
		}
		holders, err := holdersOf(root, a, listening, own)
		if err != nil {
			return err
		}
		if holders == "" {
			continue // a socket of the running master: its own start or reload deals with it
		}
		return fmt.Errorf("%w: %s is held by %s (bind: address already in use); free it or change the Listen line", ErrCannotBind, a, holders)
	}
	return nil
}

// holdersOf names the processes that listen on a socket whose address
// conflicts with addr (the same port, and the same IP or a wildcard),
// other than the sockets own; "" when own holds every one.
func holdersOf(root, addr string, listening map[uint64]string, own []sock.Listener) (string, error) {
	inodes := map[uint64]bool{}
	for inode, a := range listening {
		if sock.Conflicts(a, addr) && !slices.ContainsFunc(own, func(l sock.Listener) bool { return l.Inode == inode }) {
			inodes[inode] = true
		}
	}
	if len(inodes) == 0 {
		if slices.ContainsFunc(own, func(l sock.Listener) bool { return sock.Conflicts(l.Addr, addr) }) {
			return "", nil
		}
		return "a socket that is bound but not listening", nil
	}
	procs, err := ipcguard.ReadProcTable(root)
	if err != nil {
		return "", err
	}
	var names []string
	for _, pid := range slices.Sorted(maps.Keys(procs.ByPID)) {
		p := procs.ByPID[pid]
		if !p.Alive() {
			continue
		}
		for _, s := range sock.SocketFDs(root, pid) {
			if inodes[s.Inode] {
				names = append(names, fmt.Sprintf("pid %d (%s)", p.PID, p.Comm))
				break
			}
		}
	}
	if len(names) == 0 {
		return fmt.Sprintf("a listening socket of no process this tool can see (inode %v)", slices.Sorted(maps.Keys(inodes))), nil
	}
	return strings.Join(names, ", "), nil
}

// treeListeners returns the listening sockets held by master and its
// descendants running exe.
func treeListeners(root string, master ipcguard.Proc, exe string, listening map[uint64]string) ([]sock.Listener, error) {
	held, err := verify.TreeSockets(root, master, exe)
	var out []sock.Listener
	for inode, addr := range listening {
		if held[inode] {
			out = append(out, sock.Listener{Addr: addr, Inode: inode})
		}
	}
	return out, err
}

// bindAddrs turns configured listen addresses into host:port ones to
// bind, and unix socket paths: a port alone or "*:PORT" is the IPv4
// wildcard (it conflicts with the same holders as the IPv6 one); host
// names are left out (a name's addresses are the server's to resolve).
func bindAddrs(listen []string) []string {
	var out []string
	for _, l := range listen {
		if strings.HasPrefix(l, "/") {
			out = append(out, l)
			continue
		}
		if _, err := strconv.ParseUint(l, 10, 16); err == nil {
			l = "*:" + l
		}
		host, port, err := net.SplitHostPort(l)
		if err != nil {
			continue
		}
		if host == "*" || host == "" {
			host = "0.0.0.0"
		}
		if _, err := netip.ParseAddr(host); err == nil {
			out = append(out, net.JoinHostPort(host, port))
		}
	}
	return out
}

// socketDirExists fails with ErrCannotBind unless the directory of a unix
// socket path exists (servers do not create it).
func socketDirExists(path string) error {
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	if err == nil && !fi.IsDir() {
		err = errors.New("not a directory")
	}
	if err != nil {
		return fmt.Errorf("%w: %s: its directory %s: %w", ErrCannotBind, path, dir, err)
	}
	return nil
}
