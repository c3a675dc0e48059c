package supervise

import (
	"bufio"
	"fmt"
	"github.com/safe-restart/safe-restart/supervise/proc"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ExitStatus is how a foreground child ended.
type ExitStatus struct {
	// Code is the exit code; -1 when a signal killed it.
	Code int `json:"code"`
	// Signal is the signal that killed it, 0 when it exited.
	Signal syscall.Signal `json:"signal,omitempty"`
	// CoreDumped says the kernel wrote a core dump.
	CoreDumped bool `json:"core_dumped,omitempty"`
	// OOMKilled says the SIGKILL came from the OOM killer: the memory
	// cgroup the child was in counted one more OOM kill (see oomCounter).
	OOMKilled bool `json:"oom_killed,omitempty"`
}

// exitStatusOf converts a wait status.
func exitStatusOf(ws syscall.WaitStatus) ExitStatus {
	if ws.Signaled() {
		return ExitStatus{Code: -1, Signal: ws.Signal(), CoreDumped: ws.CoreDump()}
	}
	return ExitStatus{Code: ws.ExitStatus()}
}

// Success reports a clean exit (status 0).
func (s ExitStatus) Success() bool { return s.Signal == 0 && s.Code == 0 }

// ExitCode is the status a shell would report: the code, or 128+signal.
func (s ExitStatus) ExitCode() int {
	if s.Signal != 0 {
		return 128 + int(s.Signal)
	}
	return s.Code
}

func (s ExitStatus) String() string {
	switch {
	case s.OOMKilled:
		return "killed by the OOM killer (" + proc.SigName(s.Signal) + ")"
	case s.Signal != 0 && s.CoreDumped:
		return "killed by " + proc.SigName(s.Signal) + " (core dumped)"
	case s.Signal != 0:
		return "killed by " + proc.SigName(s.Signal)
	}
	return fmt.Sprintf("exit code %d", s.Code)
}

// oomCounter is the OOM-kill count of the memory cgroup a process is in,
// read at one moment, so that a later count tells whether the OOM killer
// struck in between.
type oomCounter struct {
	file  string // memory.oom_control (v1) or memory.events (v2); "" when unknown
	kills int64
}

// cgroupRoot is where the cgroup hierarchies are mounted.
var cgroupRoot = "/sys/fs/cgroup"

// readOOMCounter reads the OOM-kill count of pid's memory cgroup: the v1
// memory controller's memory.oom_control ("oom_kill N") when pid is in
// one, else the v2 group's memory.events ("oom_kill N"). A process whose
// cgroup cannot be read gives the zero counter, which never reports a kill.
func readOOMCounter(procRoot string, pid int) oomCounter {
	data, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return oomCounter{}
	}
	file := memoryCgroupFile(string(data))
	if file == "" {
		return oomCounter{}
	}
	n, ok := readOOMKills(file)
	if !ok {
		return oomCounter{}
	}
	return oomCounter{file: file, kills: n}
}

// memoryCgroupFile returns the file holding the OOM-kill count for a
// /proc/PID/cgroup text, e.g.
//
//	4:memory:/process_api/1d33
//	0::/system.slice/nginx.service
func memoryCgroupFile(text string) string {
	for _, line := range strings.Split(text, "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			if c == "memory" {
				return filepath.Join(cgroupRoot, "memory", f[2], "memory.oom_control")
			}
		}
	}
	v2 := cgroupV2(text)
	if v2 == "" {
		return ""
	}
	return filepath.Join(cgroupV2Dir(v2), "memory.events")
}

// cgroupV2Dir is the directory of the unified cgroup v2 (a cgroupV2 path),
// on a pure v2 mount or a hybrid one (v2 at "unified").
func cgroupV2Dir(v2 string) string {
	if _, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers")); err == nil {
		return filepath.Join(cgroupRoot, v2)
	}
	return filepath.Join(cgroupRoot, "unified", v2)
}

// readOOMKills reads the "oom_kill N" line of file.
func readOOMKills(file string) (int64, bool) {
	f, err := os.Open(file)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "oom_kill "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// now returns the counter read again: the same cgroup, its count now
// (c unchanged when it cannot be read).
func (c oomCounter) now() oomCounter {
	if c.file == "" {
		return c
	}
	if n, ok := readOOMKills(c.file); ok {
		c.kills = n
	}
	return c
}

// since returns how many OOM kills the cgroup counted after c was read.
func (c oomCounter) since() int64 {
	if c.file == "" {
		return 0
	}
	n, ok := readOOMKills(c.file)
	if !ok {
		return 0
	}
	return n - c.kills
}

// cgroupV2 is the unified (cgroup v2) path in a /proc/PID/cgroup text: its
// "0::" line; "" when there is none.
func cgroupV2(text string) string {
	for _, line := range strings.Split(text, "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return p
		}
	}
	return ""
}
