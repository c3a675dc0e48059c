package proc

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/safe-restart/safe-restart/ipcguard"
)

// TreePSS sums the PSS of master and all its live descendants (any
// program), from /proc/PID/smaps_rollup (Linux 4.14). It returns the
// total in bytes and how many processes it measured; processes that exit
// meanwhile are skipped.
func TreePSS(procRoot string, master ipcguard.Proc) (int64, int, error) {
	procs, err := ipcguard.ReadProcTable(procRoot)
	if err != nil {
		return 0, 0, err
	}
	children := map[int][]int{}
	for _, p := range procs.ByPID {
		if p.Alive() {
			children[p.PPID] = append(children[p.PPID], p.PID)
		}
	}
	var total int64
	n := 0
	for queue := []int{master.PID}; len(queue) > 0; queue = queue[1:] {
		pid := queue[0]
		queue = append(queue, children[pid]...)
		pss, err := ReadPSS(procRoot, pid)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNoSuchProcess) {
			continue
		}
		if err != nil {
			return 0, 0, err
		}
		total, n = total+pss, n+1
	}
	if n == 0 {
		return 0, 0, fmt.Errorf("no process of the tree of pid %d left to measure", master.PID)
	}
	return total, n, nil
}

// ReadPSS returns the Pss line of /proc/PID/smaps_rollup in bytes, e.g.
//
//	Pss:               30621 kB
//
// A zombie, or a kernel thread, has an empty smaps_rollup: 0.
func ReadPSS(procRoot string, pid int) (int64, error) {
	n, _, err := ReadKiBLine(filepath.Join(procRoot, strconv.Itoa(pid), "smaps_rollup"), "Pss:")
	return n, err
}

// ReadKiBLine returns, in bytes, the value of the line of a /proc file
// that begins with key ("MemAvailable:", "Pss:") and ends in kB; found
// says whether there was one. A malformed value wraps
// ipcguard.ErrMalformed.
func ReadKiBLine(path, key string) (n int64, found bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), key)
		if !ok {
			continue
		}
		kib, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		if err != nil {
			return 0, true, fmt.Errorf("%w: %s: %q", ipcguard.ErrMalformed, path, sc.Text())
		}
		return kib << 10, true, nil
	}
	if err := sc.Err(); err != nil {
		return 0, false, fmt.Errorf("read %s: %w", path, err)
	}
	return 0, false, nil
}
