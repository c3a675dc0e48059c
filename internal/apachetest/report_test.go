//go:build linux

package apachetest_test

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/safe-restart/safe-restart/internal/apachetest"
	"github.com/safe-restart/safe-restart/internal/nstest"
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
	r := &reporter{t: t, srv: srv, roles: map[int]string{}}
	r.roles[srv.Starter.PID] = "starter(exited)"
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
			err := k.Proc.WaitExited(deadline)
			s, _ := k.Proc.Stat()
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
			if !slices.ContainsFunc(after, func(a apachetest.SemSet) bool { return a.ID == s.ID }) {
				gone = append(gone, s.ID)
			}
		}
		for _, s := range after {
			if !slices.ContainsFunc(before, func(a apachetest.SemSet) bool { return a.ID == s.ID }) {
				added = append(added, s.ID)
			}
		}
		r.logf("-k %s: semids removed %v, added %v", scenario, gone, added)
		srv.Stop()
		r.report("after -k stop")
	}
}

func pids(ps []nstest.ProcStat) []int {
	var out []int
	for _, p := range ps {
		out = append(out, p.PID)
	}
	return out
}

type reporter struct {
	t     *testing.T
	srv   *apachetest.Server
	roles map[int]string
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
	for _, p := range nstest.Processes() {
		uid := "?"
		if st, err := os.Stat(fmt.Sprintf("/proc/%d", p.PID)); err == nil {
			uid = fmt.Sprint(st.Sys().(*syscall.Stat_t).Uid)
		}
		fmt.Fprintf(&b, "\n    pid=%d ppid=%d state=%c uid=%s comm=%s role=%s", p.PID, p.PPID, p.State, uid, p.Comm, r.role(p.PID))
	}
	r.logf("processes %s:%s", label, b.String())
}

func (r *reporter) report(label string) []apachetest.SemSet {
	r.t.Helper()
	for _, c := range r.srv.ChildProcs() {
		if _, ok := r.roles[c.PID]; !ok {
			r.roles[c.PID] = "child"
		}
	}
	for _, p := range r.srv.Processes() {
		if _, ok := r.roles[p.PID]; !ok {
			r.roles[p.PID] = "apache(other)"
		}
	}
	r.procs(label)
	sets, err := apachetest.SemSets()
	if err != nil {
		r.t.Fatal(err)
	}
	m := r.srv.Master()
	mstart, _ := m.StartTime()
	sstart, _ := r.srv.Starter.StartTime()
	sem, shm, msg, _ := apachetest.SysVCounts()
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d sem sets, %d shm segments, %d msg queues; starter pid %d started %s, master pid %d started %s",
		label, sem, shm, msg, r.srv.Starter.PID, sstart.Format("15:04:05.00"), m.PID, mstart.Format("15:04:05.00"))
	for _, s := range sets {
		cmp := "same second as master start"
		switch {
		case s.CTime.Unix() < mstart.Unix():
			cmp = "EARLIER than master start"
		case s.CTime.Unix() > mstart.Unix():
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

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "0"
	}
	return t.Format("15:04:05")
}
