package supervise

import (
	"slices"

	"github.com/safe-restart/safe-restart/ipcguard"
)

// Orphans returns the processes of the server that dead masters left: the
// state a kill -9 of the master leaves (REFERENCE.md §1: prefork and
// event children keep serving, re-parented, holding the listeners and the
// semaphores, and event children ignore TERM). An orphan is a process that
// runs the server's binary itself (not merely one named like it: these
// processes get signalled), has no parent that does,
// is not the live master (live may be nil), holds a listening socket, and
// is a worker: never root (a master started as root stays root, its workers
// switch to User), and either running as User or, for a server started
// without root (master and workers share a uid), without children of the
// server.
//
// Limit: orphans of another dead instance of the same server with the same
// User also qualify; they hold that instance's ports.
func Orphans(procRoot string, procs ipcguard.ProcTable, exe string, user uint32, live *ipcguard.Proc) ([]ipcguard.Proc, error) {
	var svc []ipcguard.Proc
	for _, p := range procs.ByExe(exe) {
		if runs(p, exe) {
			svc = append(svc, p)
		}
	}
	isSvc, hasChild := map[int]bool{}, map[int]bool{}
	for _, p := range svc {
		isSvc[p.PID] = true
	}
	for _, p := range svc {
		if isSvc[p.PPID] {
			hasChild[p.PPID] = true
		}
	}
	listening, err := readListening(procRoot)
	if err != nil {
		return nil, err
	}
	var out []ipcguard.Proc
	for _, p := range svc {
		switch {
		case isSvc[p.PPID], live != nil && p.Key() == live.Key(), p.UID == 0:
		case p.UID != user && hasChild[p.PID]:
		case len(listenersOf(procRoot, p.PID, listening)) == 0:
		default:
			out = append(out, Descendants(procs, p, exe)...)
		}
	}
	slices.SortFunc(out, func(a, b ipcguard.Proc) int { return a.PID - b.PID })
	return out, nil
}
