package generation

import (
	"maps"
	"time"

	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/server"
	"github.com/safe-restart/safe-restart/supervise/sock"
)

// oldGeneration returns the master's children of an older generation: the
// ones whose title says they drain (draining, for a server.Drainer), else
// the ones started before lower when the log dated the load (Apache's
// children finishing after a graceful restart); none when neither tells.
func oldGeneration(in Input, draining map[int]bool, lower time.Time, dated bool) []OldProc {
	out := []OldProc{}
	_, drains := in.Profile.Driver.(server.Drainer)
	if !drains && !dated {
		return out
	}
	for _, c := range children(in.Tree, in.Master) {
		started := proc.StartedAt(c)
		if drains && !draining[c.PID] || !drains && !started.Before(lower) {
			continue
		}
		out = append(out, OldProc{PID: c.PID, Started: started, Connections: -1})
	}
	if len(out) > 0 {
		countConnections(in, out)
	}
	return out
}

// countConnections sets each old process's TCP connections to the master's
// listeners; they stay -1 when the kernel cannot say.
func countConnections(in Input, old []OldProc) {
	accepted := map[uint64]bool{}
	for _, l := range in.Listeners {
		conns, err := sock.AcceptedOn(l)
		if err != nil {
			return
		}
		maps.Copy(accepted, conns)
	}
	for i := range old {
		old[i].Connections = 0
		for _, s := range sock.SocketFDs(in.ProcRoot, old[i].PID) {
			if accepted[s.Inode] {
				old[i].Connections++
			}
		}
	}
}
