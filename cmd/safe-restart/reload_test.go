package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/safe-restart/safe-restart/internal/apachetest"
	"github.com/safe-restart/safe-restart/internal/nstest"
	"github.com/safe-restart/safe-restart/internal/proctest"
	"github.com/safe-restart/safe-restart/internal/semtest"
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
	if code != exitOK || !strings.Contains(out, "has been reloaded 3 times (budget 3)") || master.Alive() {
		t.Fatalf("reload over budget: exit %d (old master alive %v)\n%s\n%s", code, master.Alive(), out, errOut)
	}
}

// TestReloadRecoversAfterIPCRemoval: the live server's semaphores are
// removed under it (as logind's RemoveIPC does), its children die with
// AH00144 and the master exits; safe-restart SERVICE brings it back, exit 4.
func TestReloadRecoversAfterIPCRemoval(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := apachetest.Start(t, apachetest.Config{MPM: "prefork", SysvSem: true})
	master := srv.Master()
	for id := range semIDs(t) {
		if err := semtest.Remove(id); err != nil {
			t.Fatal(err)
		}
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
	stop := clientLoad(t, srv)
	for i := 0; i < 5; i++ {
		if code, out, errOut := runCLI(t, "reload", "apache2", "--conf", srv.ConfPath, "--state-dir", state); code != exitOK {
			t.Fatalf("reload %d: exit %d\n%s\n%s", i+1, code, out, errOut)
		}
	}
	if ok, failed := stop(); ok == 0 || failed != 0 {
		t.Fatalf("during 5 reloads: %d requests served, %d failed; want none failed", ok, failed)
	}
}
