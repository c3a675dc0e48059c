//go:build linux

package ipcguard_test

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/internal/apachetest"
	"github.com/safe-restart/safe-restart/internal/nstest"
	"github.com/safe-restart/safe-restart/internal/srvtest"
	"github.com/safe-restart/safe-restart/ipcguard"
)

// Real Apache (sysvsem mutexes, mod_auth_digest, mod_ssl with shmcb, two
// Listen lines) in private namespaces, killed with kill -9 as deploy scripts
// do. These tests are the reason ipcguard exists: leaked sets go, live sets
// of the running server stay, started by safe-restart or not.

func apacheConfig(mpm string) apachetest.Config {
	return apachetest.Config{MPM: mpm, SysvSem: true, AuthDigest: true, SSL: true}
}

func semSets(t *testing.T) map[int]ipcguard.SemSet {
	t.Helper()
	sets, err := ipcguard.ReadSemTable("/proc")
	if err != nil {
		t.Fatal(err)
	}
	m := map[int]ipcguard.SemSet{}
	for _, s := range sets {
		m[s.ID] = s
	}
	return m
}

func take(t *testing.T) ipcguard.Snapshot {
	t.Helper()
	s, err := ipcguard.Take(context.Background(), ipcguard.Source{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func masterKey(t *testing.T, srv *apachetest.Server) ipcguard.ProcKey {
	t.Helper()
	procs, err := ipcguard.ReadProcTable("/proc")
	if err != nil {
		t.Fatal(err)
	}
	p, ok := procs.Live(srv.MasterPID())
	if !ok {
		t.Fatalf("master %d is not alive", srv.MasterPID())
	}
	return p.Key()
}

// waitUntil blocks until the clock reaches at. The lineage window compares
// a set's creation with a master's start, so a test that needs sets older
// than the window must let that much time pass between the two.
func waitUntil(t *testing.T, at time.Time) {
	t.Helper()
	timer := time.NewTimer(time.Until(at))
	defer timer.Stop()
	<-timer.C
}

func judge(t *testing.T, sig ipcguard.Signature, window time.Duration, lineageDir string) ipcguard.Report {
	t.Helper()
	r, err := ipcguard.Inspect(context.Background(), ipcguard.InspectOptions{Signature: &sig, Window: window, LineageDir: lineageDir})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func semVerdicts(r ipcguard.Report) map[int]ipcguard.Judgement {
	m := map[int]ipcguard.Judgement{}
	for _, j := range r.Judgements {
		if j.Kind == ipcguard.KindSem {
			m[j.ID] = j
		}
	}
	return m
}

func TestApacheReap(t *testing.T) {
	nstest.RequireBinaries(t, "apache2")
	for _, mpm := range []string{"prefork", "event"} {
		t.Run(mpm, func(t *testing.T) {
			if !nstest.InPrivateNamespaces(t) {
				return
			}
			testApacheReap(t, mpm)
		})
	}
}

func testApacheReap(t *testing.T, mpm string) {
	// Two deploys that ended with kill -9 of the whole group.
	for i := 0; i < 2; i++ {
		apachetest.Start(t, apacheConfig(mpm)).KillGroup9()
	}
	leaked := semSets(t)
	if len(leaked) < 4 {
		t.Fatalf("two killed %s servers leaked %d sets, want at least 4", mpm, len(leaked))
	}
	var newest int64
	for _, s := range leaked {
		newest = max(newest, s.CTime)
	}
	// Let the leaked sets predate the next master by more than the clock
	// slack (2 s), so that a zero lineage window proves them foreign to it.
	waitUntil(t, time.Unix(newest+3, 0))

	before := take(t)
	srv := apachetest.Start(t, apacheConfig(mpm))
	lineage := ipcguard.NewLineage("apache2", masterKey(t, srv), before, take(t))
	dir := t.TempDir()
	if err := ipcguard.SaveLineage(dir, lineage); err != nil {
		t.Fatal(err)
	}
	live := map[int]bool{}
	for _, c := range lineage.Objects {
		live[c.ID] = true
	}
	sig := ipcguard.ApacheSignature("apache2", 33, srv.Bin)

	// Not started by safe-restart: the lineage window decides.
	checkVerdicts(t, "no lineage, window 0", semVerdicts(judge(t, sig, 0, "")), leaked, live, false)
	// Started by safe-restart: exact attribution, even with a wide window.
	withLineage := judge(t, sig, time.Hour, dir)
	checkVerdicts(t, "lineage, window 1h", semVerdicts(withLineage), leaked, live, true)
	// Without lineage, a wide window keeps everything younger than it.
	for id, j := range semVerdicts(judge(t, sig, time.Hour, "")) {
		if j.Verdict == ipcguard.Orphan {
			t.Errorf("window 1h, no lineage: set %d judged orphan: %v", id, j.Proof)
		}
	}

	reaper := ipcguard.Reaper{Log: zerolog.New(zerolog.NewTestWriter(t))}
	if _, err := reaper.Reap(context.Background(), withLineage.Judgements); err != nil {
		t.Fatal(err)
	}
	left := semSets(t)
	for id := range leaked {
		if _, ok := left[id]; ok {
			t.Errorf("leaked set %d was not reaped", id)
		}
	}
	for id := range live {
		if _, ok := left[id]; !ok {
			t.Errorf("live set %d of the running server was reaped", id)
		}
	}
	if len(left) != len(live) {
		t.Errorf("%d sets left, want the %d of the running server", len(left), len(live))
	}
	assertServes(t, srv)
}

// checkVerdicts: every leaked set is an orphan, and no set of the running
// server is; with a lineage, each of the running server's sets is live.
func checkVerdicts(t *testing.T, label string, got map[int]ipcguard.Judgement, leaked map[int]ipcguard.SemSet, live map[int]bool, exact bool) {
	t.Helper()
	for id := range leaked {
		if got[id].Verdict != ipcguard.Orphan {
			t.Errorf("%s: leaked set %d: %s %v", label, id, got[id].Verdict, got[id].Proof)
		}
	}
	for id := range live {
		j := got[id]
		if j.Verdict == ipcguard.Orphan || (exact && j.Verdict != ipcguard.Live) {
			t.Errorf("%s: live set %d: %s %v", label, id, j.Verdict, j.Proof)
		}
	}
}

// assertServes checks that the server still answers plain HTTP (prefork's
// accept mutex) and TLS (the ssl-cache mutex, created before the master).
func assertServes(t *testing.T, srv *apachetest.Server) {
	t.Helper()
	for i := 0; i < 3; i++ {
		if code, _, err := srv.Get("/"); err != nil || code != 200 {
			t.Fatalf("GET / after reap: %d, %v\n%s", code, err, srv.ErrorLogText())
		}
		if code, _, err := srv.GetTLS("/"); err != nil || code != 200 {
			t.Fatalf("TLS GET / after reap: %d, %v\n%s", code, err, srv.ErrorLogText())
		}
	}
}

// TestApacheOrphanWorkersKeepSets: after kill -9 of the master alone, its
// children keep serving and holding the sets: nothing is an orphan.
func TestApacheOrphanWorkersKeepSets(t *testing.T) {
	nstest.RequireBinaries(t, "apache2")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := apachetest.Start(t, apacheConfig("prefork"))
	srv.KillMaster9()
	sets := semSets(t)
	r := judge(t, ipcguard.ApacheSignature("apache2", 33, srv.Bin), 0, "")
	for id, j := range semVerdicts(r) {
		if j.Verdict == ipcguard.Orphan {
			t.Errorf("set %d held by orphaned workers judged orphan: %v", id, j.Proof)
		}
	}
	outs, err := (&ipcguard.Reaper{}).Reap(context.Background(), r.Judgements)
	if err != nil || len(outs) != 0 || len(semSets(t)) != len(sets) {
		t.Fatalf("reap with orphaned workers alive: %d outcomes, %v", len(outs), err)
	}
	if code, _, err := srvtest.Get(srv.Listen[0], "/"); err != nil || code != 200 {
		t.Fatalf("orphaned workers stopped serving: %d, %v", code, err)
	}
}
