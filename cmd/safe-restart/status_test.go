package main

import (
	"strconv"
	"strings"
	"testing"

	"github.com/safe-restart/safe-restart/internal/apachetest"
	"github.com/safe-restart/safe-restart/internal/nstest"
)

// TestStatusApache: status names the master and its listeners, and the
// orphaned workers a kill -9 left as a risk; a stopped server exits 1.
func TestStatusApache(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	dead := apachetest.Start(t, apachetest.Config{MPM: "event", SysvSem: true})
	dead.KillMaster9()
	srv := apachetest.Start(t, apachetest.Config{MPM: "prefork", SysvSem: true})
	state := t.TempDir()
	code, out, errOut := runCLI(t, "status", "apache2", "--conf", srv.ConfPath, "--state-dir", state)
	if code != exitOK || !strings.Contains(out, "running, master "+strconv.Itoa(srv.MasterPID())) ||
		!strings.Contains(out, srv.Listen[0]) || !strings.Contains(out, "orphaned workers of a dead master") {
		t.Fatalf("status: exit %d\n%s\n%s", code, out, errOut)
	}
	srv.Stop()
	code, out, _ = runCLI(t, "status", "apache2", "--conf", srv.ConfPath, "--state-dir", state)
	if code != exitFailed || !strings.Contains(out, "not running") {
		t.Fatalf("status of a stopped server: exit %d\n%s", code, out)
	}
}
