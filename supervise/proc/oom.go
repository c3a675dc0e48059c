package proc

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// OOMCounter is the OOM-kill count of the memory cgroup a process is in,
// read at one moment, so that a later count tells whether the OOM killer
// struck in between.
type OOMCounter struct {
	File  string // memory.oom_control (v1) or memory.events (v2); "" when unknown
	Kills int64
}

// CgroupRoot is where the cgroup hierarchies are mounted.
var CgroupRoot = "/sys/fs/cgroup"

// ReadOOMCounter reads the OOM-kill count of pid's memory cgroup: the v1
// memory controller's memory.oom_control ("oom_kill N") when pid is in
// one, else the v2 group's memory.events ("oom_kill N"). A process whose
// cgroup cannot be read gives the zero counter, which never reports a kill.
func ReadOOMCounter(procRoot string, pid int) OOMCounter {
	data, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return OOMCounter{}
	}
	file := memoryCgroupFile(string(data))
	if file == "" {
		return OOMCounter{}
	}
	n, ok := readOOMKills(file)
	if !ok {
		return OOMCounter{}
	}
	return OOMCounter{File: file, Kills: n}
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
				return filepath.Join(CgroupRoot, "memory", f[2], "memory.oom_control")
			}
		}
	}
	v2 := CgroupV2(text)
	if v2 == "" {
		return ""
	}
	return filepath.Join(CgroupV2Dir(v2), "memory.events")
}

// CgroupV2Dir is the directory of the unified cgroup v2 (a cgroupV2 path),
// on a pure v2 mount or a hybrid one (v2 at "unified").
func CgroupV2Dir(v2 string) string {
	if _, err := os.Stat(filepath.Join(CgroupRoot, "cgroup.controllers")); err == nil {
		return filepath.Join(CgroupRoot, v2)
	}
	return filepath.Join(CgroupRoot, "unified", v2)
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

// Now returns the counter read again: the same cgroup, its count now
// (c unchanged when it cannot be read).
func (c OOMCounter) Now() OOMCounter {
	if c.File == "" {
		return c
	}
	if n, ok := readOOMKills(c.File); ok {
		c.Kills = n
	}
	return c
}

// Since returns how many OOM kills the cgroup counted after c was read.
func (c OOMCounter) Since() int64 {
	if c.File == "" {
		return 0
	}
	n, ok := readOOMKills(c.File)
	if !ok {
		return 0
	}
	return n - c.Kills
}

// CgroupV2 is the unified (cgroup v2) path in a /proc/PID/cgroup text: its
// "0::" line; "" when there is none.
func CgroupV2(text string) string {
	for _, line := range strings.Split(text, "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return p
		}
	}
	return ""
}
