package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/safe-restart/safe-restart/internal/apachetest"
	"github.com/safe-restart/safe-restart/internal/nstest"
	"github.com/safe-restart/safe-restart/internal/proctest"
	"github.com/safe-restart/safe-restart/internal/semtest"
	"github.com/safe-restart/safe-restart/ipcguard"
)

// plainStart runs Apache's own start, as a deploy script would.
func plainStart(t *testing.T, srv *apachetest.Server) string {
	t.Helper()
	out, err := exec.Command(srv.Bin, "-f", srv.ConfPath, "-k", "start").CombinedOutput()
	t.Logf("%s -k start: %v: %s", srv.Bin, err, out)
	return string(out)
}

// TestStartAfterKill9Leftovers: a kill -9 of the whole group leaked sets;
// a kill -9 of the master alone left orphans holding the port, so Apache's
// own start fails (AH00072). safe-restart start stops the orphans, reaps
// the leaked sets and starts a server that serves.
func TestStartAfterKill9Leftovers(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	cfg := apachetest.Config{MPM: "event", SysvSem: true, AuthDigest: true}
	apachetest.Start(t, cfg).KillGroup9()
	srv := apachetest.Start(t, cfg)
	srv.KillMaster9()
	orphans := srv.Processes()
	if len(orphans) == 0 {
		t.Fatal("no orphans after kill -9 of the master")
	}
	if out := plainStart(t, srv); !strings.Contains(out, "AH00072") {
		t.Fatalf("Apache's own start with the orphans holding the port: %q, want AH00072", out)
	}
	state := t.TempDir()
	code, out, errOut := runCLI(t, "start", "apache2", "--conf", srv.ConfPath, "--state-dir", state)
	if code != exitOK || !strings.Contains(out, "started apache2") {
		t.Fatalf("start: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, p := range orphans {
		if proctest.Of(p).Alive() {
			t.Errorf("orphan %d still alive", p.PID)
		}
	}
	if c, _, err := srv.Get("/"); err != nil || c != 200 {
		t.Fatalf("GET / after start: %d, %v", c, err)
	}
	lineages, err := ipcguard.LoadLineages(filepath.Join(state, "lineage"), "apache2")
	if err != nil || len(lineages) != 1 {
		t.Fatalf("lineages %v, %v: want the one this start recorded", lineages, err)
	}
	if left := semIDs(t); len(left) != len(lineages[0].Objects) {
		t.Errorf("%d sets left, want only the %d the start created", len(left), len(lineages[0].Objects))
	}
	// Started already: left alone.
	code, out, _ = runCLI(t, "start", "apache2", "--conf", srv.ConfPath, "--state-dir", state)
	if code != exitOK || !strings.Contains(out, "already running") {
		t.Errorf("second start: exit %d\n%s", code, out)
	}
}

// TestStartWithSEMMNIExhausted: with SEMMNI lowered and enough sets leaked,
// Apache's own start fails with AH00023 (No space left on device);
// safe-restart start reaps the leaked sets first and succeeds.
func TestStartWithSEMMNIExhausted(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	cfg := apachetest.Config{MPM: "prefork", SysvSem: true, AuthDigest: true}
	var srv *apachetest.Server
	for i := 0; i < 5; i++ { // 2 sets each: the accept mutex and authdigest's
		srv = apachetest.Start(t, cfg)
		srv.KillGroup9()
	}
	leaked := len(semIDs(t))
	if err := os.WriteFile("/proc/sys/kernel/sem", []byte("32000 1024000000 500 "+strconv.Itoa(leaked)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Every set is taken: the starter's first mutex already fails, and the
	// error reaches only its own output.
	if out := plainStart(t, srv); !strings.Contains(out, "No space left on device") || !strings.Contains(out, "AH00023") {
		t.Fatalf("Apache's own start with all %d sets leaked: %q, want AH00023 ENOSPC", leaked, out)
	}
	code, out, errOut := runCLI(t, "start", "apache2", "--conf", srv.ConfPath, "--state-dir", t.TempDir())
	if code != exitOK {
		t.Fatalf("start: exit %d\n%s\n%s", code, out, errOut)
	}
	if c, _, err := srv.Get("/"); err != nil || c != 200 {
		t.Fatalf("GET / after start: %d, %v", c, err)
	}
}

// TestStartRefusesBadConfig: a config test failure touches nothing.
func TestStartRefusesBadConfig(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	bad := filepath.Join(t.TempDir(), "bad.conf")
	conf := "LoadModule mpm_prefork_module /usr/lib/apache2/modules/mod_mpm_prefork.so\nNoSuchDirective on\n"
	if err := os.WriteFile(bad, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI(t, "start", "apache2", "--conf", bad, "--state-dir", t.TempDir())
	if code != exitRefused || !strings.Contains(errOut, "NoSuchDirective") {
		t.Fatalf("exit %d, stderr %s; want %d naming the bad line", code, errOut, exitRefused)
	}
}

// TestStartPidfileCases: a pidfile naming an unrelated live process is
// removed (Apache's own start would exit 0 on it, starting nothing) and the
// server starts; a pidfile older than the live master it names (pid reuse,
// or a clock step) is refused, exit 3, and no second master starts.
func TestStartPidfileCases(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := apachetest.Start(t, apachetest.Config{MPM: "prefork"})
	srv.KillGroup9()
	id := semtest.DeadSets(t, "1 33 1")[0]
	holder := semtest.Holder(t, id)
	if err := os.WriteFile(srv.PidFile, []byte(strconv.Itoa(holder.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	bystander, err := proctest.Identify(holder.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	if code, out, errOut := runCLI(t, "start", "apache2", "--conf", srv.ConfPath, "--state-dir", state); code != exitOK {
		t.Fatalf("start over a pidfile naming another program: exit %d\n%s\n%s", code, out, errOut)
	}
	if !bystander.Alive() {
		t.Fatal("the unrelated process named by the pidfile was signalled")
	}
	master := srv.MasterPID()
	past := time.Now().Add(-time.Hour)
	if err := os.Chtimes(srv.PidFile, past, past); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI(t, "start", "apache2", "--conf", srv.ConfPath, "--state-dir", state)
	if code != exitRefused || !strings.Contains(errOut, "pid reused") {
		t.Fatalf("start with a pidfile older than its live master: exit %d, %s; want %d", code, errOut, exitRefused)
	}
	if srv.MasterPID() != master {
		t.Fatal("a second master was started")
	}
}
