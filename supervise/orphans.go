package supervise

import (
	"slices"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/sock"
)

// Orphans returns the workers that dead masters of the server left: the
// state a kill -9 of the master leaves (REFERENCE.md §1: prefork and event
// children keep serving, re-parented, holding the listeners and the
// semaphores; event children ignore TERM). These processes get signalled,
// so every condition must hold:
//
//   - it runs the server's binary itself, not merely one named like it;
//   - it is not the live master (live may be nil), and no process running
//     the binary is its parent or its child: a worker, cut off;
//   - it is not root: a master started as root stays root, its workers
//     switch to User;
//   - its session leader is dead: the masters call setsid, so their
//     workers' session id is the master's pid, and a live master of any
//     instance, even a childless one, leads its own session; a process
//     whose session leader lives (a shell, a supervisor: anything) belongs
//     to someone, whatever binary it runs;
//   - it holds a listening socket.
//
// Limit: workers of another dead instance of the same server qualify too;
// they hold that instance's ports, which no live master serves.
func Orphans(procRoot string, procs ipcguard.ProcTable, exe string, live *ipcguard.Proc) ([]ipcguard.Proc, error) {
	svc := proc.RunningExactly(procs, exe)
	isSvc, hasChild := map[int]bool{}, map[int]bool{}
	for _, p := range svc {
		isSvc[p.PID] = true
	}
	for _, p := range svc {
		if isSvc[p.PPID] {
			hasChild[p.PPID] = true
		}
	}
	listening, err := sock.ReadListening(procRoot)
	if err != nil {
		return nil, err
	}
	var out []ipcguard.Proc
	for _, p := range svc {
		switch {
		case isSvc[p.PPID], hasChild[p.PID], p.UID == 0, live != nil && p.Key() == live.Key():
		case p.Session == p.PID || isSvc[p.Session] || sessionLeaderAlive(procs, p):
		case len(sock.ListenersOf(procRoot, p.PID, listening)) == 0:
		default:
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b ipcguard.Proc) int { return a.PID - b.PID })
	return out, nil
}

// sessionLeaderAlive reports whether p's session leader is a live process
// (a zombie leader, killed and not yet reaped, is dead; a reused pid that
// now names another live process counts as alive: that errs on sparing).
func sessionLeaderAlive(procs ipcguard.ProcTable, p ipcguard.Proc) bool {
	_, ok := procs.Live(p.Session)
	return ok
}
