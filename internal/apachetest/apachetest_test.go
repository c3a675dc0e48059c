//go:build linux

package apachetest_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/safe-restart/safe-restart/internal/apachetest"
	"github.com/safe-restart/safe-restart/internal/nstest"
	"github.com/safe-restart/safe-restart/internal/proctest"
	"github.com/safe-restart/safe-restart/internal/srvtest"
	"github.com/safe-restart/safe-restart/ipcguard"
)

// full is the configuration the semaphore experiments use.
func full(mpm string) apachetest.Config {
	return apachetest.Config{MPM: mpm, SysvSem: true, AuthDigest: true, SSL: true}
}

// snapshot reads the IPC objects of the test's namespace (ipcguard.Take):
// the semaphore sets with GETVAL/GETPID/GETNCNT/GETZCNT of every semaphore,
// shared memory segments and message queues.
func snapshot(t *testing.T) ipcguard.Snapshot {
	t.Helper()
	snap, err := ipcguard.Take(context.Background(), ipcguard.Source{})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func semIDs(t *testing.T) []int {
	t.Helper()
	var ids []int
	for _, s := range snapshot(t).Sem {
		ids = append(ids, s.ID)
	}
	return ids
}

// procUID returns the real uid of pid, or -1 if it cannot be read.
func procUID(pid int) int {
	p, err := proctest.Stat(pid)
	if err != nil {
		return -1
	}
	return int(p.UID)
}

func TestStart(t *testing.T) {
	nstest.RequireBinaries(t, "apache2")
	// Semaphore sets of the full configuration right after start: prefork
	// has mpm-accept (2 listeners), authdigest-client and ssl-cache (the
	// last created by the starter); event and worker: see doc.go.
	wantSets := map[string]int{"prefork": 3, "event": 2, "worker": -1}
	for _, mpm := range []string{"prefork", "event", "worker"} {
		t.Run(mpm, func(t *testing.T) {
			if !nstest.InPrivateNamespaces(t) {
				return
			}
			srv := apachetest.Start(t, full(mpm))
			m := srv.Master()
			if m.PID != srv.MasterPID() || !m.Alive() {
				t.Fatalf("master %v, pidfile %d", m, srv.MasterPID())
			}
			if st, _ := m.Stat(); st.PPID != 1 {
				t.Errorf("master's parent is %d, want 1 (the test process, PID 1 of the namespace)", st.PPID)
			}
			if srv.Starter.Alive() {
				t.Errorf("starter %v still alive", srv.Starter)
			}
			// A freshly forked child is root until it drops privileges;
			// wait (under a deadline) until all have.
			deadline := time.Now().Add(10 * time.Second)
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				kids := srv.Children()
				root := slices.DeleteFunc(slices.Clone(kids), func(k int) bool { return procUID(k) == 33 })
				if len(kids) > 0 && len(root) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("children %v, of which %v do not run as www-data (33)", kids, root)
				}
				<-tick.C
			}
			for _, a := range srv.Listen {
				if code, body, err := srvtest.Get(a, "/"); err != nil || code != http.StatusOK || body != "apachetest ok\n" {
					t.Errorf("GET http://%s/: %d %q %v", a, code, body, err)
				}
			}
			if code, _, err := srv.GetTLS("/"); err != nil || code != http.StatusOK {
				t.Errorf("GET https://%s/: %d %v", srv.SSLAddr, code, err)
			}
			if code, _, err := srv.Get("/digest/"); err != nil || code != http.StatusUnauthorized {
				t.Errorf("GET /digest/: %d %v, want 401", code, err)
			}
			sets := snapshot(t).Sem
			t.Logf("%s: %d semaphore sets after start", mpm, len(sets))
			if w := wantSets[mpm]; w >= 0 && len(sets) != w {
				t.Errorf("%d semaphore sets, want %d: %+v", len(sets), w, sets)
			}
			srv.Stop()
			if ps := srv.Processes(); len(ps) != 0 {
				t.Errorf("processes left after Stop: %+v", ps)
			}
			if ids := semIDs(t); len(ids) != 0 {
				t.Errorf("semaphore sets left after a clean stop: %v", ids)
			}
		})
	}
}

func TestStartDefaults(t *testing.T) {
	nstest.RequireBinaries(t, "apache2")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := apachetest.Start(t, apachetest.Config{})
	if srv.Config.MPM != "prefork" || len(srv.Listen) != 2 || srv.SSLAddr != "" {
		t.Errorf("defaults: %+v, listen %v, ssl %q", srv.Config, srv.Listen, srv.SSLAddr)
	}
	// No "Mutex sysvsem": APR's default (pthread) mutexes, no sets.
	if ids := semIDs(t); len(ids) != 0 {
		t.Errorf("semaphore sets without SysvSem: %v", ids)
	}
	// Cleanup SIGKILLs the server.
}

func TestKillGroup9LeaksSemaphores(t *testing.T) {
	nstest.RequireBinaries(t, "apache2")
	for _, mpm := range []string{"prefork", "event"} {
		t.Run(mpm, func(t *testing.T) {
			if !nstest.InPrivateNamespaces(t) {
				return
			}
			srv := apachetest.Start(t, full(mpm))
			before := semIDs(t)
			if len(before) == 0 {
				t.Fatal("no semaphore sets after start")
			}
			srv.KillGroup9()
			if ps := srv.Processes(); len(ps) != 0 {
				t.Fatalf("processes left after KillGroup9: %+v", ps)
			}
			if srv.Master().Alive() {
				t.Fatal("master alive after KillGroup9")
			}
			after := semIDs(t)
			if len(after) == 0 || !slices.Equal(before, after) {
				t.Errorf("semaphore sets before %v, after KillGroup9 %v: want all leaked", before, after)
			}
		})
	}
}

func TestKillMaster9OrphansKeepServing(t *testing.T) {
	nstest.RequireBinaries(t, "apache2")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := apachetest.Start(t, full("prefork"))
	kids := srv.ChildProcs()
	before := semIDs(t)
	srv.KillMaster9()
	if _, err := srv.Master().Stat(); !errors.Is(err, proctest.ErrGone) {
		t.Fatalf("master after KillMaster9: %v, want gone (killed and reaped)", err)
	}
	for _, k := range kids {
		st, err := proctest.Of(k).Stat()
		if err != nil || !st.Alive() || st.PPID != 1 {
			t.Errorf("child %d after KillMaster9: %+v %v; want alive, re-parented to PID 1", k.PID, st, err)
		}
	}
	for _, a := range srv.Listen {
		if code, _, err := srvtest.Get(a, "/"); err != nil || code != http.StatusOK {
			t.Errorf("orphans serving http://%s/: %d %v", a, code, err)
		}
	}
	if after := semIDs(t); !slices.Equal(before, after) {
		t.Errorf("semaphore sets before %v, after KillMaster9 %v", before, after)
	}
	srv.KillGroup9()
	if ps := srv.Processes(); len(ps) != 0 {
		t.Fatalf("processes left after KillGroup9: %+v", ps)
	}
}

func TestGraceful(t *testing.T) {
	nstest.RequireBinaries(t, "apache2")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := apachetest.Start(t, full("prefork"))
	sets := snapshot(t).Sem
	// The ssl-cache set is the one whose creator (GETPID, as nothing has
	// locked it yet) is the starter.
	ssl := -1
	for _, s := range sets {
		if len(s.Sems) > 0 && s.Sems[0].PID == srv.Starter.PID {
			ssl = s.ID
		}
	}
	if ssl < 0 {
		t.Fatalf("no set created by the starter %d: %+v", srv.Starter.PID, sets)
	}
	master := srv.Master()
	srv.Graceful()
	if srv.Master() != master {
		t.Errorf("master changed across graceful: %v -> %v", master, srv.Master())
	}
	after := semIDs(t)
	if len(after) != len(sets) || !slices.Contains(after, ssl) {
		t.Errorf("after graceful: sets %v; want %d sets including the starter's %d", after, len(sets), ssl)
	}
	for _, s := range sets {
		if s.ID != ssl && slices.Contains(after, s.ID) {
			t.Errorf("set %d survived graceful; want it re-created", s.ID)
		}
	}
}
