package doctor

import (
	"fmt"
	"path/filepath"
	"slices"

	"github.com/safe-restart/safe-restart/supervise"
	"github.com/safe-restart/safe-restart/supervise/proc"
)

// oomFindings reports the OOM kills that the memory cgroup of the running
// master counts (proc.ReadOOMCounter: v1 memory.oom_control, v2
// memory.events): the kernel killed processes of the service for memory.
// The SIGKILL lines of the error log (log-sigkill, among logs) are then
// its evidence, and their finding is dropped: the returned list replaces
// logs. A master in the root cgroup is not judged: the root's count is
// the whole machine's. procRoot is where /proc is mounted.
func oomFindings(procRoot string, st supervise.Status, logs []Finding) []Finding {
	if st.Master == nil {
		return logs
	}
	c := proc.ReadOOMCounter(procRoot, st.Master.PID)
	if c.File == "" || c.Kills == 0 || isRootCgroup(filepath.Dir(c.File)) {
		return logs
	}
	f := Finding{Check: "oom-kill", Service: st.Service, Severity: Critical,
		Summary:  fmt.Sprintf("the kernel's OOM killer killed %d process(es) in the memory cgroup of master %d: the requests they served failed", c.Kills, st.Master.PID),
		Evidence: []string{fmt.Sprintf("oom_kill %d in %s (the memory cgroup of master %d, counted since the cgroup was created)", c.Kills, c.File, st.Master.PID)},
		Fix: fmt.Sprintf("size the workers to the cgroup's memory limit (pm.max_children, MaxRequestWorkers) or raise the limit (the unit's MemoryMax=), "+
			"recycle workers (pm.max_requests, MaxConnectionsPerChild) and look for the leak (`safe-restart doctor %s` after a while compares php-fpm workers' memory); "+
			"`dmesg | grep -i 'killed process'` names the victims", st.Service)}
	i := slices.IndexFunc(logs, func(l Finding) bool { return l.Check == "log-sigkill" })
	if i >= 0 {
		f.Evidence = append(f.Evidence, "the error log: "+logs[i].Summary)
		f.Evidence = append(f.Evidence, logs[i].Evidence...)
		logs = slices.Delete(slices.Clone(logs), i, i+1)
	}
	return append([]Finding{f}, logs...)
}

// isRootCgroup reports whether dir is the root of a cgroup hierarchy
// (v1 memory, a pure v2 mount, or v2 under unified).
func isRootCgroup(dir string) bool {
	for _, root := range []string{filepath.Join(proc.CgroupRoot, "memory"), proc.CgroupRoot, filepath.Join(proc.CgroupRoot, "unified")} {
		if filepath.Clean(dir) == root {
			return true
		}
	}
	return false
}
