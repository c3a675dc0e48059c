package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/safe-restart/safe-restart/internal/apachetest"
	"github.com/safe-restart/safe-restart/internal/nstest"
	"github.com/safe-restart/safe-restart/internal/proctest"
	"github.com/safe-restart/safe-restart/internal/promtest"
	"github.com/safe-restart/safe-restart/internal/semtest"
	"github.com/safe-restart/safe-restart/internal/srvtest"
	"github.com/safe-restart/safe-restart/ipcguard"
)

// TestReloadApache: a verified graceful reload keeps the master (same
// identity) and the set count, and a new generation serves, TLS included;
// a bad config exits 3 and changes nothing.
func TestReloadApache(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := apachetest.Start(t, apachetest.Config{MPM: "prefork", SysvSem: true, AuthDigest: true, SSL: true})
	master, err := proctest.Identify(srv.MasterPID())
	if err != nil {
		t.Fatal(err)
	}
	sets := len(semIDs(t))
	state := t.TempDir()
	for i := 0; i < 3; i++ {
		code, out, errOut := runCLI(t, "reload", "apache2", "--conf", srv.ConfPath, "--state-dir", state)
		if code != exitOK || !strings.Contains(out, "reloaded apache2") {
			t.Fatalf("reload %d: exit %d\n%s\n%s", i+1, code, out, errOut)
		}
	}
	if !master.Alive() || srv.MasterPID() != master.PID {
		t.Fatal("the reload replaced the master")
	}
	if n := len(semIDs(t)); n != sets {
		t.Errorf("%d sets after reloads, want %d", n, sets)
	}
	if c, _, err := srv.GetTLS("/"); err != nil || c != 200 {
		t.Fatalf("TLS GET after reloads: %d, %v", c, err)
	}
	good, err := os.ReadFile(srv.ConfPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(srv.ConfPath, append(good, "\nNoSuchDirective on\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCLI(t, "apache2", "--conf", srv.ConfPath, "--state-dir", state); code != exitRefused || !master.Alive() {
		t.Fatalf("reload with a bad config: exit %d (master alive %v)\n%s", code, master.Alive(), errOut)
	}
	// A reload budget: this master has logged 3 reloads, so it is restarted.
	if err := os.WriteFile(srv.ConfPath, good, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "apache2", "--conf", srv.ConfPath, "--state-dir", state, "--max-reloads", "3", "--graceful-timeout", "0")
	if code != exitOK || !strings.Contains(out, "has been reloaded 3 times (budget 3, counted by its error log)") || master.Alive() {
		t.Fatalf("reload over budget: exit %d (old master alive %v)\n%s\n%s", code, master.Alive(), out, errOut)
	}
	// --full: a verified restart, a new master.
	second, err := proctest.Identify(srv.MasterPID())
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCLI(t, "apache2", "--conf", srv.ConfPath, "--state-dir", state, "--full", "--graceful-timeout", "0")
	if code != exitOK || !strings.Contains(out, "restarted apache2 (--full)") || second.Alive() {
		t.Fatalf("--full: exit %d (old master alive %v)\n%s\n%s", code, second.Alive(), out, errOut)
	}
	if c, _, err := srv.Get("/"); err != nil || c != 200 {
		t.Fatalf("GET after --full: %d, %v", c, err)
	}
}

// TestReloadRecoversAfterIPCRemoval: Apache runs as a regular user (uid
// 1000, which logind does not exempt as a system user), so its sysvsem
// mutexes are owned by that uid. logind's RemoveIPC removes every set owned
// by the user when its last session ends, in use or not (REFERENCE.md §3);
// the test does the same. The children die with AH00144 and the master
// exits; safe-restart SERVICE brings the server back, exit 4.
func TestReloadRecoversAfterIPCRemoval(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	const uid = 1000
	srv := apachetest.Start(t, apachetest.Config{MPM: "prefork", SysvSem: true, User: "#1000", Group: "#1000"})
	// A set of another user (a system user's: logind never touches it)
	// that must survive.
	other, err := semtest.Create(0, 1, 0o600, 33, 33, 1)
	if err != nil {
		t.Fatal(err)
	}
	master := srv.Master()
	if n := removeSetsOwnedBy(t, uid); n == 0 {
		t.Fatalf("no semaphore set owned by uid %d: Apache did not hand its mutexes to User", uid)
	}
	if err := master.WaitExited(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatalf("the master survived the removal of its semaphores: %v", err)
	}
	if log := srv.ErrorLogText(); !strings.Contains(log, "AH00144") {
		t.Fatalf("no AH00144 in the error log:\n%s", log)
	}
	code, out, errOut := runCLI(t, "apache2", "--conf", srv.ConfPath, "--state-dir", t.TempDir())
	if code != exitRecovered || !strings.Contains(out, "recovered") {
		t.Fatalf("exit %d, want %d\n%s\n%s", code, exitRecovered, out, errOut)
	}
	if c, _, err := srv.Get("/"); err != nil || c != 200 {
		t.Fatalf("GET after recovery: %d, %v", c, err)
	}
	if !semIDs(t)[other] {
		t.Fatalf("set %d of uid 33 was removed", other)
	}
}

// removeSetsOwnedBy removes every semaphore set whose owner (sem_perm.uid)
// is uid, as logind's clean_ipc_by_uid does, and returns how many.
func removeSetsOwnedBy(t *testing.T, uid uint32) int {
	t.Helper()
	sets, err := ipcguard.ReadSemTable("/proc")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range sets {
		if s.UID != uid {
			continue
		}
		if err := semtest.Remove(s.ID); err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

// TestReloadUnderLoadRefusesNothing: a verified graceful reload keeps the
// listeners, so a client opening new connections throughout is never
// refused.
func TestReloadUnderLoadRefusesNothing(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := apachetest.Start(t, apachetest.Config{MPM: "prefork", SysvSem: true})
	state := t.TempDir()
	stop := clientLoad(t, srv.Get)
	for i := 0; i < 5; i++ {
		if code, out, errOut := runCLI(t, "reload", "apache2", "--conf", srv.ConfPath, "--state-dir", state); code != exitOK {
			t.Fatalf("reload %d: exit %d\n%s\n%s", i+1, code, out, errOut)
		}
	}
	ok, failed := stop()
	if ok == 0 || failed != 0 {
		t.Fatalf("during 5 reloads: %d requests served, %d failed; want none failed", ok, failed)
	}
	t.Logf("during 5 reloads: %d requests served, none failed", ok)
}

// TestReloadBudgetSurvivesLogRotation: the real logrotate (Debian's
// options: compress, delaycompress; its postrotate reloads Apache, not
// through safe-restart) renames the error log between reloads, and the
// reload's own notice goes to the renamed file. The count goes on across
// the rotated files: metrics reports it, with or without --status-url
// (mod_status agrees), an unreachable status page falls back to the log,
// saying so, and --max-reloads restarts the master once the count reaches
// it, without --status-url.
func TestReloadBudgetSurvivesLogRotation(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl", "logrotate")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := apachetest.Start(t, apachetest.Config{MPM: "prefork", Status: true})
	master := srv.Master()
	state := t.TempDir()
	reload := func(extra ...string) (int, string, string) {
		return runCLI(t, append([]string{"reload", "apache2", "--conf", srv.ConfPath, "--state-dir", state}, extra...)...)
	}
	for i := 0; i < 2; i++ {
		if code, out, errOut := reload(); code != exitOK {
			t.Fatalf("reload %d: exit %d\n%s\n%s", i+1, code, out, errOut)
		}
	}
	srv.Logrotate() // the 3rd reload
	unreachable := "http://" + srvtest.FreeAddr(t) + "/server-status?auto"
	code, out, errOut := reload("--max-reloads", "4", "--status-url", unreachable)
	if code != exitOK || !strings.Contains(out, "reloaded apache2") || srv.MasterPID() != master.PID ||
		!strings.Contains(errOut, "counting reloads in the error log and its rotated files instead") {
		t.Fatalf("3 reloads, budget 4: exit %d, want a plain reload with a warning\n%s\n%s", code, out, errOut)
	}
	srv.Logrotate() // the 5th; error.log.1 is now error.log.2.gz
	if strings.Contains(srv.ErrorLogText(), "AH00171") {
		t.Fatalf("the current log holds a restart notice: the rotation did not happen as on Debian\n%s", srv.ErrorLogText())
	}
	for _, extra := range [][]string{nil, {"--status-url", srv.StatusURL()}} {
		code, out, errOut = runCLI(t, append([]string{"metrics", "apache2", "--conf", srv.ConfPath, "--state-dir", state}, extra...)...)
		if got := promtest.Parse(t, out)["safe_restart_reloads_since_master_start{service=apache2}"]; code != exitOK || got != 5 {
			t.Fatalf("metrics %v: exit %d, reloads %v; want 5\n%s\n%s", extra, code, got, out, errOut)
		}
		if strings.Contains(errOut, "instead") {
			t.Fatalf("metrics %v did not read the status page:\n%s", extra, errOut)
		}
	}
	code, out, errOut = reload("--max-reloads", "5", "--graceful-timeout", "0")
	if code != exitOK || !strings.Contains(out, "has been reloaded 5 times (budget 5, counted by its error log)") || master.Alive() {
		t.Fatalf("5 reloads across two rotations, budget 5: exit %d (old master alive %v)\n%s\n%s", code, master.Alive(), out, errOut)
	}
	if c, _, err := srv.Get("/"); err != nil || c != 200 {
		t.Fatalf("GET after the restart: %d, %v", c, err)
	}
}
