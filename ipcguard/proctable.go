package ipcguard

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"
)

// userHZ is the unit of /proc/PID/stat starttime. proc(5) gives it in clock
// ticks, to be divided by sysconf(_SC_CLK_TCK); that is USER_HZ, which the
// kernel fixes at 100 for userspace on every architecture Go supports
// (it converts from its internal HZ, see jiffies_64_to_clock_t). Go offers
// no sysconf without cgo, so, like prometheus/procfs's userHZ, we use the
// constant.
const userHZ = 100

// commLen is the longest command name the kernel keeps (TASK_COMM_LEN-1).
const commLen = 15

// ReadProcTable scans procRoot (normally "/proc") once, reading every
// process directory as ReadProc does, with the boot time read once. Boot is
// the btime of procRoot/stat and Taken is when the scan began. Processes
// that vanish during the scan are skipped; a malformed file is an error
// wrapping ErrMalformed that names it.
func ReadProcTable(procRoot string) (ProcTable, error) {
	t := ProcTable{Taken: time.Now()}
	var err error
	if t.Boot, err = readBootTime(procRoot); err != nil {
		return ProcTable{}, fmt.Errorf("read proc table: %w", err)
	}
	pids, err := listPIDs(procRoot)
	if err != nil {
		return ProcTable{}, fmt.Errorf("read proc table: %w", err)
	}
	t.ByPID = make(map[int]Proc, len(pids))
	for _, pid := range pids {
		p, err := readProc(procRoot, pid, t.Boot)
		if errors.Is(err, ErrNoProcess) {
			continue
		}
		if err != nil {
			return ProcTable{}, fmt.Errorf("read proc table: %w", err)
		}
		t.ByPID[pid] = p
	}
	return t, nil
}

// ReadProc reads process pid under procRoot (normally "/proc"): its stat,
// the real uid from status, and readlink exe ("" when unreadable: kernel
// threads, zombies, permission). Start is the btime of procRoot/stat, read
// on every call, plus StartTicks/userHZ. A process that does not exist, or
// vanishes while it is read, is an error wrapping ErrNoProcess; a zombie
// is returned, with Alive false. Like /proc itself, it also reads a thread
// when pid is a thread id. A malformed file is an error wrapping
// ErrMalformed that names it.
func ReadProc(procRoot string, pid int) (Proc, error) {
	boot, err := readBootTime(procRoot)
	if err != nil {
		return Proc{}, fmt.Errorf("read process %d: %w", pid, err)
	}
	p, err := readProc(procRoot, pid, boot)
	if err != nil {
		return Proc{}, fmt.Errorf("read process %d: %w", pid, err)
	}
	return p, nil
}

// readBootTime reads the boot time from procRoot/stat.
func readBootTime(procRoot string) (time.Time, error) {
	path := filepath.Join(procRoot, "stat")
	data, err := os.ReadFile(path)
	if err != nil {
		return time.Time{}, err
	}
	boot, err := parseBootTime(string(data))
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", path, err)
	}
	return boot, nil
}

// listPIDs returns the pids named by the numeric entries of procRoot.
func listPIDs(procRoot string) ([]int, error) {
	f, err := os.Open(procRoot)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", procRoot, err)
	}
	pids := make([]int, 0, len(names))
	for _, name := range names {
		if pid, ok := parseDigits(name, 10, math.MaxInt32); ok && pid > 0 {
			pids = append(pids, int(pid))
		}
	}
	return pids, nil
}

// readProc reads process pid under procRoot, boot being the btime of
// procRoot/stat: the one code path of ReadProc and ReadProcTable. A process
// that vanished is an error wrapping ErrNoProcess and the os error.
func readProc(procRoot string, pid int, boot time.Time) (Proc, error) {
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	p, err := readStat(dir, pid)
	if err == nil {
		p.UID, p.Threads, err = readStatus(dir)
	}
	if vanished(err) {
		return Proc{}, fmt.Errorf("%w: %w", ErrNoProcess, err)
	}
	if err != nil {
		return Proc{}, err
	}
	p.Start = boot.Add(time.Duration(p.StartTicks) * (time.Second / userHZ))
	p.Exe, err = os.Readlink(filepath.Join(dir, "exe"))
	if err != nil {
		if _, err := os.Lstat(dir); vanished(err) {
			return Proc{}, fmt.Errorf("%w: %w", ErrNoProcess, err)
		}
		p.Exe = ""
	}
	return p, nil
}

// readStat reads and parses dir/stat, checking that it names pid.
func readStat(dir string, pid int) (Proc, error) {
	path := filepath.Join(dir, "stat")
	data, err := os.ReadFile(path)
	if err != nil {
		return Proc{}, err
	}
	p, err := parseStat(string(data))
	if err == nil && p.PID != pid {
		err = malformedLine(1, "pid %d in the file of pid %d", p.PID, pid)
	}
	if err != nil {
		return Proc{}, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// readStatus reads the real uid and the thread count from dir/status.
func readStatus(dir string) (uid uint32, threads int, err error) {
	path := filepath.Join(dir, "status")
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	if uid, err = parseStatusUID(string(data)); err == nil {
		threads, err = parseStatusThreads(string(data))
	}
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w", path, err)
	}
	return uid, threads, nil
}

// vanished reports whether err says a process or one of its files went
// away mid-scan (ENOENT, or ESRCH from a dying process).
func vanished(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH)
}

// ByExe returns the live processes that may run exe, sorted by pid: those
// whose Exe is exe, or exe with the " (deleted)" suffix the kernel adds
// once the binary was replaced (a package upgrade under a running service).
// It also returns, conservatively, every live process whose Comm is
// filepath.Base(exe) cut to 15 bytes, whatever its Exe: a build of the same
// server installed elsewhere (/usr/local/apache2/bin/httpd), or one whose
// Exe cannot be read, could be the service and hold its objects. An empty
// exe matches nothing.
func (t ProcTable) ByExe(exe string) []Proc {
	if exe == "" {
		return nil
	}
	// /proc/PID/exe shows the path with symlinks resolved (a server started
	// as /sbin/apache2 on a merged-/usr system reads /usr/sbin/apache2).
	if real, err := filepath.EvalSymlinks(exe); err == nil {
		exe = real
	}
	comm := filepath.Base(exe)
	comm = comm[:min(len(comm), commLen)]
	var out []Proc
	for _, p := range t.ByPID {
		if p.Alive() && mayRun(p, exe, comm) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b Proc) int { return cmp.Compare(a.PID, b.PID) })
	return out
}

// mayRun reports whether p may run exe, whose command name is comm.
func mayRun(p Proc, exe, comm string) bool {
	return p.Exe == exe || p.Exe == exe+" (deleted)" || p.Comm == comm
}
