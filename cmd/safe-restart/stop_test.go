package main

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/safe-restart/safe-restart/internal/apachetest"
	"github.com/safe-restart/safe-restart/internal/nstest"
	"github.com/safe-restart/safe-restart/internal/proctest"
	"github.com/safe-restart/safe-restart/internal/semtest"
)

// TestStopApache: a dry run changes nothing; stop ends the master and its
// children, Apache's own sets go with it, and the sets a kill -9
// predecessor leaked are reaped since no master is left to hold them.
func TestStopApache(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	cfg := apachetest.Config{MPM: "prefork", SysvSem: true, AuthDigest: true}
	apachetest.Start(t, cfg).KillGroup9()
	srv := apachetest.Start(t, cfg)
	state := t.TempDir()

	code, out, errOut := runCLI(t, "stop", "apache2", "--conf", srv.ConfPath, "--state-dir", state, "--dry-run")
	if code != exitOK || !strings.Contains(out, "would stop apache2: master "+strconv.Itoa(srv.MasterPID())) {
		t.Fatalf("dry run: exit %d\n%s\n%s", code, out, errOut)
	}
	if c, _, err := srv.Get("/"); err != nil || c != 200 {
		t.Fatalf("after a dry run the server does not serve: %d, %v", c, err)
	}

	master := srv.Master()
	code, out, errOut = runCLI(t, "stop", "apache2", "--conf", srv.ConfPath, "--state-dir", state, "--graceful-timeout", "20s")
	if code != exitOK || !strings.Contains(out, "stopped apache2") {
		t.Fatalf("stop: exit %d\n%s\n%s", code, out, errOut)
	}
	if master.Alive() || len(srv.Processes()) != 0 {
		t.Errorf("processes left after stop: %v", srv.Processes())
	}
	if left := semIDs(t); len(left) != 0 {
		t.Errorf("sets left after stop: %v\n%s", left, errOut)
	}
	// Stopped already: nothing to do but what kill -9 left of another
	// generation: its workers, still holding their port, are stopped too.
	dead := apachetest.Start(t, apachetest.Config{MPM: "event", SysvSem: true})
	dead.KillMaster9()
	orphans := dead.Processes()
	code, out, _ = runCLI(t, "stop", "apache2", "--conf", srv.ConfPath, "--state-dir", state)
	if code != exitOK || !strings.Contains(out, "apache2 was not running") || !strings.Contains(out, "orphaned worker(s)") {
		t.Errorf("second stop: exit %d\n%s", code, out)
	}
	for _, p := range orphans {
		if proctest.Of(p).Alive() {
			t.Errorf("orphan %d left running by stop", p.PID)
		}
	}
}

// TestStopRefusesForeignPidfile: a pidfile that names an unrelated live
// process gets a clear error, exit 3, and the process is not signalled.
func TestStopRefusesForeignPidfile(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := apachetest.Start(t, apachetest.Config{MPM: "prefork"})
	srv.KillGroup9()
	id := semtest.DeadSets(t, "1 33 1")[0]
	holder := semtest.Holder(t, id) // any live process that is not Apache
	if err := os.WriteFile(srv.PidFile, []byte(strconv.Itoa(holder.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	victim, err := proctest.Identify(holder.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI(t, "stop", "apache2", "--conf", srv.ConfPath, "--state-dir", t.TempDir())
	if code != exitRefused || !strings.Contains(errOut, "not the server's process") || !strings.Contains(errOut, "/usr/sbin/apache2") {
		t.Fatalf("exit %d, stderr %s; want exit %d naming the foreign process", code, errOut, exitRefused)
	}
	if !victim.Alive() {
		t.Fatal("the unrelated process named by the pidfile was signalled")
	}
}
