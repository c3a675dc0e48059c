package supervise

import (
	"slices"

	"github.com/safe-restart/safe-restart/ipcguard"
)

// Descendants returns master and its live descendants that run the server's
// binary itself, master first, then by pid: the tree a stop ladder waits
// for and may KILL. Helpers the server spawned with other programs (piped
// loggers, CGI scripts) are not included; the server manages them.
func Descendants(procs ipcguard.ProcTable, master ipcguard.Proc, exe string) []ipcguard.Proc {
	svc := runningExactly(procs, exe)
	children := map[int][]ipcguard.Proc{}
	for _, p := range svc {
		children[p.PPID] = append(children[p.PPID], p)
	}
	out := []ipcguard.Proc{master}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i].PID]...)
	}
	slices.SortFunc(out[1:], func(a, b ipcguard.Proc) int { return a.PID - b.PID })
	return out
}
