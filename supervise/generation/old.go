package generation

import (
	"net"
	"strconv"
	"time"

	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/server"
	"github.com/safe-restart/safe-restart/supervise/sock"
)

// oldGeneration returns the master's children of an older generation: the
// ones whose title says they drain (server.Drainer), else the ones started
// before lower when the log dated the load (Apache's children finishing
// after a graceful restart); none when neither tells.
func oldGeneration(in Input, lower time.Time, dated bool) []OldProc {
	out := []OldProc{}
	d, drains := in.Profile.Driver.(server.Drainer)
	if !drains && !dated {
		return out
	}
	accepted := acceptedConns(in.Listeners)
	for _, c := range children(in.Tree, in.Master) {
		started := proc.StartedAt(c)
		if drains && !d.Draining(cmdline(in.ProcRoot, c.PID)) || !drains && !started.Before(lower) {
			continue
		}
		o := OldProc{PID: c.PID, Started: started, Connections: -1}
		if accepted != nil {
			o.Connections = 0
			for _, s := range sock.SocketFDs(in.ProcRoot, c.PID) {
				if accepted[s.Inode] {
					o.Connections++
				}
			}
		}
		out = append(out, o)
	}
	return out
}

// acceptedConns returns the inodes of the established TCP connections on
// the listeners' addresses; nil when they cannot be read.
func acceptedConns(listeners []sock.Listener) map[uint64]bool {
	all := map[uint64]bool{}
	for _, l := range listeners {
		host, port, err := net.SplitHostPort(l.Addr)
		if err != nil {
			continue
		}
		n, err := strconv.Atoi(port)
		if err != nil {
			continue
		}
		conns, err := sock.TCPAccepted(net.ParseIP(host), n)
		if err != nil {
			return nil
		}
		for ino := range conns {
			all[ino] = true
		}
	}
	return all
}
