package verify

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/sock"
)

// waitsInAccept reports whether a thread of a process in tree is blocked
// in accept(2) or accept4(2) on the socket whose inode is inode, as
// procRoot/PID/task/TID/syscall shows it (the call's number, then its
// arguments, the descriptor first). The kernel hands such a thread a
// connection queued on that socket: the tree takes connections there,
// which a probe shows only once it is taken, holding a worker meanwhile
// (see listenerAccepted). False wherever the kernel does not say so (a
// thread that waits in poll or epoll, as nginx's and Apache event's do; a
// running one; ptrace access refused; calls of another architecture): the
// probes decide then.
func waitsInAccept(root string, tree []ipcguard.Proc, inode uint64) bool {
	for _, p := range tree {
		dir := filepath.Join(root, strconv.Itoa(p.PID), "task")
		tasks, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		var sockets []sock.SocketFD // read once, when a thread waits in accept
		for _, t := range tasks {
			data, err := os.ReadFile(filepath.Join(dir, t.Name(), "syscall"))
			if err != nil {
				continue
			}
			fd, ok := acceptFD(string(data))
			if !ok {
				continue
			}
			if sockets == nil {
				sockets = sock.SocketFDs(root, p.PID)
			}
			if slices.Contains(sockets, sock.SocketFD{FD: fd, Inode: inode}) {
				return true
			}
		}
	}
	return false
}

// acceptFD returns the descriptor a thread waits on in accept(2) or
// accept4(2), from its syscall file ("NR ARG1 ARG2 ... SP PC": the number
// in decimal, the arguments in hex); false for another call, a running
// thread ("running"), one outside any call ("-1 SP PC"), or a line it
// cannot parse.
func acceptFD(line string) (int, bool) {
	f := strings.Fields(line)
	if len(f) < 2 {
		return 0, false
	}
	nr, err := strconv.Atoi(f[0])
	if err != nil || !slices.Contains(acceptCalls, nr) {
		return 0, false
	}
	fd, err := strconv.ParseUint(strings.TrimPrefix(f[1], "0x"), 16, 31)
	if err != nil {
		return 0, false
	}
	return int(fd), true
}
