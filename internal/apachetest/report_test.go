//go:build linux

package apachetest_test

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/safe-restart/safe-restart/internal/apachetest"
	"github.com/safe-restart/safe-restart/internal/nstest"
	"github.com/safe-restart/safe-restart/internal/proctest"
	"github.com/safe-restart/safe-restart/ipcguard"
)

// TestReport documents, in its -v output, what Apache does with System V
// semaphores over its life cycle. It asserts little; run it with
//
//	APACHETEST_REPORT=1 go test -v -run TestReport ./internal/apachetest
func TestReport(t *testing.T) {
	if os.Getenv("APACHETEST_REPORT") == "" {
		t.Skip("set APACHETEST_REPORT=1 to run the semaphore life-cycle report")
	}
	nstest.RequireBinaries(t, "apache2")
	for _, mpm := range []string{"prefork", "event"} {
		for _, scenario := range []string{"kill9", "stop", "graceful", "restart"} {
			t.Run(mpm+"/"+scenario, func(t *testing.T) {
				if !nstest.InPrivateNamespaces(t) {
					return
				}
				runReport(t, mpm, scenario)
			})
		}
	}
}

func runReport(t *testing.T, mpm, scenario string) {
	srv := apachetest.Start(t, apachetest.Config{MPM: mpm, SysvSem: true, AuthDigest: true, SSL: true})
	r := &reporter{t: t, srv: srv, roles: map[int]string{}, starts: map[int]time.Time{}}
	r.roles[srv.Starter.PID] = "starter(exited)"
	r.starts[srv.Starter.PID] = srv.StarterStart
	r.roles[srv.Master().PID] = "master"
	r.report("after start")
	code, _, err := srv.Get("/digest/")
	r.logf("GET /digest/ without credentials: %d %v", code, err)
	code, _, err = srv.GetTLS("/")
	r.logf("GET https://%s/: %d %v", srv.SSLAddr, code, err)
	before := r.report("after one digest and one TLS request")
	switch scenario {
	case "kill9":
		kids := srv.ChildProcs()
		srv.KillMaster9()
		r.logf("KillMaster9 done; children before: %v", pids(kids))
		for _, a := range srv.Listen {
			code, _, err := apachetest.GetFrom(a, "/")
			r.logf("GET http://%s/ after master SIGKILL: %d %v", a, code, err)
		}
		code, _, err := srv.GetTLS("/")
		r.logf("GET https://%s/ after master SIGKILL: %d %v", srv.SSLAddr, code, err)
		r.procs("after KillMaster9")
		// Do the orphans exit by themselves? Wait on their pidfds briefly.
		deadline := time.Now().Add(3 * time.Second)
		for _, k := range kids {
			err := proctest.Of(k).WaitExited(deadline)
			s, _ := proctest.Of(k).Stat()
			r.logf("orphan %d: exited within 3s: %v (state %c ppid %d)", k.PID, err == nil, s.State, s.PPID)
		}
		for _, a := range srv.Listen {
			code, _, err := apachetest.GetFrom(a, "/")
			r.logf("GET http://%s/ 3s later: %d %v", a, code, err)
		}
		r.report("after KillMaster9")
		srv.KillGroup9()
		r.report("after KillGroup9 (everything dead)")
	case "stop":
		srv.Stop()
		r.report("after -k stop")
	case "graceful", "restart":
		if scenario == "graceful" {
			srv.Graceful()
		} else {
			srv.Restart()
		}
		r.roles[srv.Master().PID] = "master"
		after := r.report("after -k " + scenario)
		var gone, added []int
		for _, s := range before {
			if !slices.ContainsFunc(after, func(a ipcguard.SemSet) bool { return a.ID == s.ID }) {
				gone = append(gone, s.ID)
			}
		}
		for _, s := range after {
			if !slices.ContainsFunc(before, func(a ipcguard.SemSet) bool { return a.ID == s.ID }) {
				added = append(added, s.ID)
			}
		}
		r.logf("-k %s: semids removed %v, added %v", scenario, gone, added)
		srv.Stop()
		r.report("after -k stop")
	}
}

func pids(ps []ipcguard.Proc) []int {
	var out []int
	for _, p := range ps {
		out = append(out, p.PID)
	}
	return out
}

type reporter struct {
	t      *testing.T
	srv    *apachetest.Server
	roles  map[int]string
	starts map[int]time.Time // start time of every process seen, by PID
}

func (r *reporter) logf(format string, args ...any) {
	r.t.Helper()
	r.t.Logf("REPORT "+format, args...)
}

func (r *reporter) role(pid int) string {
	if pid == 0 {
		return "none"
	}
	if s, ok := r.roles[pid]; ok {
		return s
	}
	return "other"
}

func (r *reporter) procs(label string) {
	r.t.Helper()
	var b strings.Builder
	for _, p := range proctest.Processes() {
		fmt.Fprintf(&b, "\n    pid=%d ppid=%d state=%c uid=%d comm=%s role=%s", p.PID, p.PPID, p.State, p.UID, p.Comm, r.role(p.PID))
	}
	r.logf("processes %s:%s", label, b.String())
}

func (r *reporter) report(label string) []ipcguard.SemSet {
	r.t.Helper()
	for _, c := range r.srv.ChildProcs() {
		if _, ok := r.roles[c.PID]; !ok {
			r.roles[c.PID] = "child"
		}
		r.starts[c.PID] = c.Start
	}
	for _, p := range r.srv.Processes() {
		if _, ok := r.roles[p.PID]; !ok {
			r.roles[p.PID] = "apache(other)"
		}
		r.starts[p.PID] = p.Start
	}
	r.procs(label)
	snap := snapshot(r.t)
	sets := snap.Sem
	m := r.srv.Master()
	mstart, sstart := r.starts[m.PID], r.starts[r.srv.Starter.PID]
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d sem sets, %d shm segments, %d msg queues; starter pid %d started %s, master pid %d started %s",
		label, len(snap.Sem), len(snap.Shm), len(snap.Msg), r.srv.Starter.PID, sstart.Format("15:04:05.00"), m.PID, mstart.Format("15:04:05.00"))
	for _, s := range sets {
		// Start derives from /proc/stat btime, whole seconds truncated, so
		// it is accurate to about 1 s (as ipcguard's clockSlack allows).
		cmp := "within 1s of master start"
		switch d := s.CTime - mstart.Unix(); {
		case d < -1:
			cmp = "EARLIER than master start"
		case d > 1:
			cmp = "later than master start"
		}
		fmt.Fprintf(&b, "\n    semid=%d key=%d perms=%o nsems=%d uid=%d gid=%d cuid=%d cgid=%d otime=%s ctime=%s (%s)",
			s.ID, s.Key, s.Perms, s.NSems, s.UID, s.GID, s.CUID, s.CGID, fmtTime(s.OTime), fmtTime(s.CTime), cmp)
		for i, x := range s.Sems {
			fmt.Fprintf(&b, "\n        sem[%d] val=%d getpid=%d (%s) ncnt=%d zcnt=%d", i, x.Val, x.PID, r.role(x.PID), x.NCnt, x.ZCnt)
		}
	}
	r.logf("%s", b.String())
	if ents, err := os.ReadDir("/dev/shm"); err == nil && len(ents) > 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		r.logf("/dev/shm: %v", names)
	}
	return sets
}

// fmtTime formats sec, Unix seconds, as a time of day; 0 (never) as "0".
func fmtTime(sec int64) string {
	if sec == 0 {
		return "0"
	}
	return time.Unix(sec, 0).Format("15:04:05")
}
