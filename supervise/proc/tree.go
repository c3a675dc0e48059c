package proc

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/safe-restart/safe-restart/ipcguard"
)

// Descendants returns master and its live descendants that run the server's
// binary itself, master first, then by pid: the tree a stop ladder waits
// for and may KILL. Helpers the server spawned with other programs (piped
// loggers, CGI scripts) are not included; the server manages them.
func Descendants(procs ipcguard.ProcTable, master ipcguard.Proc, exe string) []ipcguard.Proc {
	svc := RunningExactly(procs, exe)
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

// LiveTree is Descendants read from master down, through the kernel's
// lists of each process's children (procRoot/PID/task/TID/children),
// rather than from the whole process table: a check repeated while a
// restart waits (the generation proof) then reads the tree's few
// processes, not every process of the host. Where the kernel keeps no
// such lists (CONFIG_PROC_CHILDREN unset), it reads the table.
func LiveTree(root string, master ipcguard.Proc, exe string) ([]ipcguard.Proc, error) {
	out := []ipcguard.Proc{master}
	for i := 0; i < len(out); i++ {
		kids, ok := childrenOf(root, out[i].PID)
		if !ok {
			procs, err := ipcguard.ReadProcTable(root)
			if err != nil {
				return nil, err
			}
			return Descendants(procs, master, exe), nil
		}
		for _, pid := range kids {
			if p, err := ipcguard.ReadProc(root, pid); err == nil && p.Alive() && Runs(p, exe) {
				out = append(out, p)
			}
		}
	}
	slices.SortFunc(out[1:], func(a, b ipcguard.Proc) int { return a.PID - b.PID })
	return out, nil
}

// childrenOf returns the pids of pid's children, from the children file
// of each of its threads (none for a process gone meanwhile); false when
// the kernel keeps no such files.
func childrenOf(root string, pid int) ([]int, bool) {
	dir := filepath.Join(root, strconv.Itoa(pid), "task")
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return nil, true // gone: no children to list
	}
	var out []int
	for _, t := range tasks {
		data, err := os.ReadFile(filepath.Join(dir, t.Name(), "children"))
		if errors.Is(err, fs.ErrNotExist) {
			if _, serr := os.Stat(filepath.Join(dir, t.Name())); serr == nil {
				return nil, false // the thread is there, its list is not: the kernel keeps none
			}
			continue // the thread exited meanwhile
		}
		for _, f := range strings.Fields(string(data)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out, true
}
