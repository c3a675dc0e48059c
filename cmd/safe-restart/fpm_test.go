package main

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/safe-restart/safe-restart/internal/fpmtest"
	"github.com/safe-restart/safe-restart/internal/nginxtest"
	"github.com/safe-restart/safe-restart/internal/nstest"
	"github.com/safe-restart/safe-restart/internal/proctest"
)

// fpmService is the Debian service name of the php-fpm under test.
const fpmService = "php8.2-fpm"

// fpmCLI runs safe-restart ARGS... for the test server's config.
func fpmCLI(t *testing.T, srv *fpmtest.Server, state string, args ...string) (int, string, string) {
	t.Helper()
	return runCLI(t, append(args, "--conf", srv.ConfPath, "--state-dir", state)...)
}

// mustServe fails unless /index.php answers 200 over FastCGI.
func mustServe(t *testing.T, srv *fpmtest.Server, when string) {
	t.Helper()
	if c, body, err := srv.Get("/index.php"); err != nil || c != 200 || !strings.HasPrefix(body, "fpmtest ok") {
		t.Fatalf("GET /index.php %s: %d %q, %v\n%s", when, c, body, err, srv.ErrorLogText())
	}
}

// TestFPMLifecycle: status, stop, start and restart of a real php-fpm
// through the CLI, each verified.
func TestFPMLifecycle(t *testing.T) {
	nstest.RequireBinaries(t, fpmtest.Binary)
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := fpmtest.Start(t, fpmtest.Config{Unix: true})
	state := t.TempDir()
	master := srv.MasterPID()
	code, out, errOut := fpmCLI(t, srv, state, "status", fpmService)
	if code != exitOK || !strings.Contains(out, "running, master "+strconv.Itoa(master)) || !strings.Contains(out, srv.Listen) {
		t.Fatalf("status: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, out, errOut = fpmCLI(t, srv, state, "stop", fpmService); code != exitOK || !strings.Contains(out, "stopped "+fpmService) {
		t.Fatalf("stop: exit %d\n%s\n%s", code, out, errOut)
	}
	if ps := srv.Processes(); len(ps) != 0 {
		t.Fatalf("after stop, php-fpm processes left: %+v", ps)
	}
	if code, out, errOut = fpmCLI(t, srv, state, "start", fpmService); code != exitOK || !strings.Contains(out, "started "+fpmService) {
		t.Fatalf("start: exit %d\n%s\n%s", code, out, errOut)
	}
	mustServe(t, srv, "after start")
	started := srv.MasterPID()
	code, out, errOut = fpmCLI(t, srv, state, "restart", fpmService)
	if code != exitOK || srv.MasterPID() == started || srv.MasterPID() == 0 {
		t.Fatalf("restart: exit %d, master %d (was %d)\n%s\n%s", code, srv.MasterPID(), started, out, errOut)
	}
	mustServe(t, srv, "after restart")
}

// TestFPMReload: USR2 re-executes php-fpm; the new master (a new pid) is
// found through the pidfile and serves, three times over, and the receipt
// saw no connection refused. A config with
// process_control_timeout = 0 is reloaded with the warning; a bad config
// exits 3 and leaves the master untouched.
func TestFPMReload(t *testing.T) {
	nstest.RequireBinaries(t, fpmtest.Binary)
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := fpmtest.Start(t, fpmtest.Config{})
	state := t.TempDir()
	seen := map[int]bool{srv.MasterPID(): true}
	for i := 0; i < 3; i++ {
		code, out, errOut := fpmCLI(t, srv, state, "reload", fpmService)
		m := srv.MasterPID()
		if code != exitOK || !strings.Contains(out, "reloaded "+fpmService+": master "+strconv.Itoa(m)+" (SIGUSR2)") || seen[m] ||
			!strings.Contains(out, "answered, 0 refused, 0 reset, 0 failed") {
			t.Fatalf("reload %d: exit %d, master %d (seen %v)\n%s\n%s", i+1, code, m, seen, out, errOut)
		}
		seen[m] = true
		mustServe(t, srv, "after a reload")
	}
	if strings.Contains(srv.ErrorLogText(), "ERROR") {
		t.Errorf("error lines after the reloads:\n%s", srv.ErrorLogText())
	}
	code, out, errOut := fpmCLI(t, srv, state, "status", fpmService)
	if code != exitOK || !strings.Contains(out, "3 reload(s) of this master") {
		t.Errorf("status after 3 reloads: exit %d\n%s\n%s", code, out, errOut)
	}
	good := readFile(t, srv.ConfPath)
	writeFile(t, srv.ConfPath, strings.Replace(good, "process_control_timeout = 10s", "process_control_timeout = 0", 1))
	code, out, errOut = fpmCLI(t, srv, state, fpmService)
	if code != exitOK || !strings.Contains(errOut, "process_control_timeout = 0: every reload") {
		t.Fatalf("reload with process_control_timeout = 0: exit %d, want 0 and the warning\n%s\n%s", code, out, errOut)
	}
	master, err := srv.Master()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, srv.ConfPath, good+"\nbogus = 1\n")
	code, _, errOut = fpmCLI(t, srv, state, fpmService)
	if code != exitRefused || !strings.Contains(errOut, "unknown entry 'bogus'") || !master.Alive() || srv.MasterPID() != master.PID {
		t.Fatalf("reload with a bad config: exit %d (master alive %v)\n%s", code, master.Alive(), errOut)
	}
}

// TestFPMReloadRefusesAnotherConfig: the master re-executes the config
// it was started with. When --conf names another file (here a good copy,
// while the file the master was started with is broken), a reload would
// test one file and re-execute the other, and the re-exec would die
// ("FPM initialization failed"): it is refused before anything is sent
// (exit 3, naming both files), the master untouched and serving.
func TestFPMReloadRefusesAnotherConfig(t *testing.T) {
	nstest.RequireBinaries(t, fpmtest.Binary)
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := fpmtest.Start(t, fpmtest.Config{Unix: true})
	good := readFile(t, srv.ConfPath)
	copyConf := srv.ConfPath + ".good"
	writeFile(t, copyConf, good)
	writeFile(t, srv.ConfPath, good+"\nbogus = 1\n")
	master, err := srv.Master()
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, fpmService, "--conf", copyConf, "--state-dir", t.TempDir())
	says := "the master of another instance: it was started with " + srv.ConfPath + ", not " + copyConf
	if code != exitRefused || !strings.Contains(errOut, says) {
		t.Fatalf("exit %d, want %d saying %q\n%s\n%s", code, exitRefused, says, out, errOut)
	}
	if !master.Alive() || srv.MasterPID() != master.PID {
		t.Fatalf("master %d after the refusal, want %d untouched", srv.MasterPID(), master.PID)
	}
	mustServe(t, srv, "after the refusal")
}

// TestFPMKilledMasterStart: kill -9 of the master leaves its workers
// holding the socket, and a plain start fails ("Another FPM instance seems
// to already listen"); safe-restart start stops the orphans, removes the
// socket file nothing listens on (with its proof), starts and verifies.
func TestFPMKilledMasterStart(t *testing.T) {
	nstest.RequireBinaries(t, fpmtest.Binary)
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := fpmtest.Start(t, fpmtest.Config{Unix: true})
	srv.KillMaster9()
	orphans := srv.Workers()
	if len(orphans) == 0 {
		t.Fatal("no worker survived the master's kill -9")
	}
	out, err := exec.Command(srv.Bin, "-y", srv.ConfPath).CombinedOutput()
	if err == nil || !strings.Contains(srv.ErrorLogText(), "Another FPM instance seems to already listen on "+srv.Listen) {
		t.Fatalf("a plain start beside the orphans: %v\n%s\n%s", err, out, srv.ErrorLogText())
	}
	state := t.TempDir()
	code, stdout, errOut := fpmCLI(t, srv, state, "status", fpmService)
	if code != exitFailed || !strings.Contains(stdout, "not running (stale pidfile") || !strings.Contains(stdout, "orphaned workers of a dead master") {
		t.Errorf("status: exit %d, want 1 (not running) and the orphans named as a risk\n%s\n%s", code, stdout, errOut)
	}
	code, stdout, errOut = fpmCLI(t, srv, state, "start", fpmService)
	if code != exitOK || !strings.Contains(stdout, "stopped "+strconv.Itoa(len(orphans))+" orphaned worker(s)") ||
		!strings.Contains(stdout, "removed what a dead master left: ["+srv.Listen+"]") || !strings.Contains(errOut, "connect: connection refused") {
		t.Fatalf("start: exit %d, want 0, %d orphans stopped and the socket removed with its proof\n%s\n%s", code, len(orphans), stdout, errOut)
	}
	for _, o := range orphans {
		if proctest.Of(o).Alive() {
			t.Errorf("orphan %d still alive", o.PID)
		}
	}
	mustServe(t, srv, "after the start")
}

// TestFPMReloadUnderLoad: clients sending slow requests throughout five
// reloads (process_control_timeout = 10s: the old workers finish theirs,
// the listening socket is inherited across the re-exec) see no failure.
func TestFPMReloadUnderLoad(t *testing.T) {
	nstest.RequireBinaries(t, fpmtest.Binary)
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := fpmtest.Start(t, fpmtest.Config{Children: 3})
	front := nginxtest.Start(t, nginxtest.Options{FastCGIPass: srv.Listen, Root: srv.DocRoot})
	state := t.TempDir()
	stop := load(t, 4, func() bool {
		c, body, err := front.Get("/slow.php?ms=30")
		return err == nil && c == 200 && strings.HasPrefix(body, "fpmtest slow")
	})
	for i := 0; i < 5; i++ {
		if code, out, errOut := fpmCLI(t, srv, state, "reload", fpmService); code != exitOK {
			t.Fatalf("reload %d: exit %d\n%s\n%s", i+1, code, out, errOut)
		}
	}
	ok, failed := stop()
	if ok == 0 || failed != 0 {
		t.Fatalf("during 5 reloads: %d requests served, %d failed; want none failed\n%s", ok, failed, srv.ErrorLogText())
	}
	t.Logf("during 5 reloads: %d requests served, none failed", ok)
}

// TestFPMReloadCutsRequestsWithoutTimeout is the counterpart of
// TestFPMReloadUnderLoad, and what the process_control_timeout = 0
// warning is about: every reload TERMs the workers at once, and requests
// in flight fail. (It also shows the load check can fail.)
func TestFPMReloadCutsRequestsWithoutTimeout(t *testing.T) {
	nstest.RequireBinaries(t, fpmtest.Binary)
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := fpmtest.Start(t, fpmtest.Config{Children: 3, ProcessControlTimeout: "0"})
	state := t.TempDir()
	stop := load(t, 3, func() bool {
		c, body, err := srv.Get("/slow.php?ms=300")
		return err == nil && c == 200 && strings.HasPrefix(body, "fpmtest slow")
	})
	for i := 0; i < 3; i++ {
		code, out, errOut := fpmCLI(t, srv, state, "reload", fpmService)
		if code != exitOK || !strings.Contains(errOut, "process_control_timeout = 0") {
			t.Fatalf("reload %d: exit %d, want 0 with the warning\n%s\n%s", i+1, code, out, errOut)
		}
	}
	if ok, failed := stop(); failed == 0 {
		t.Fatalf("3 reloads with process_control_timeout = 0 under load: %d served, none failed; want requests cut", ok)
	} else {
		t.Logf("3 reloads with process_control_timeout = 0: %d served, %d cut", ok, failed)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestLogrotateFPMExample runs examples/logrotate/php-fpm, pointed at a
// test server, with the real logrotate -f: the log is rotated, and the
// postrotate's verified reload leaves a new master (re-executed, a new
// pid) that writes to the new log and serves.
func TestLogrotateFPMExample(t *testing.T) {
	nstest.RequireBinaries(t, fpmtest.Binary, "logrotate")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := fpmtest.Start(t, fpmtest.Config{Unix: true})
	old := srv.MasterPID()
	log := runLogrotateExample(t, "php-fpm", srv.ErrorLog, "/usr/bin/safe-restart php8.2-fpm", "php8.2-fpm --conf "+srv.ConfPath,
		"/var/log/php8.2-fpm.log", srv.ErrorLog)
	rotated := readFile(t, srv.ErrorLog+".1")
	m := srv.MasterPID()
	if !strings.Contains(log, "reloaded and verified") || !strings.Contains(log, "rotated logs released") || m == old || m == 0 {
		t.Fatalf("postrotate did not reload to a new master, verified (master %d, was %d):\n%s", m, old, log)
	}
	if !strings.Contains(rotated, "Reloading in progress") || !strings.Contains(srv.ErrorLogText(), "fpm is running, pid "+strconv.Itoa(m)) {
		t.Fatalf("the new master does not write the new log:\n--- rotated:\n%s--- new:\n%s", rotated, srv.ErrorLogText())
	}
	mustServe(t, srv, "after logrotate")
}

// TestFPMReloadForegroundQuietLog: php-fpm as Debian's systemd unit runs it
// (--nodaemonize) with log_level = warning, so the log says nothing of a
// reload and the re-exec keeps the master's pid: the reload is proven by
// the pidfile the re-executed master writes again, not restarted.
func TestFPMReloadForegroundQuietLog(t *testing.T) {
	nstest.RequireBinaries(t, fpmtest.Binary)
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := fpmtest.Start(t, fpmtest.Config{Global: "log_level = warning"})
	state := t.TempDir()
	if code, out, errOut := fpmCLI(t, srv, state, "stop", fpmService, "--graceful-timeout", "0"); code != exitOK {
		t.Fatalf("stop: exit %d\n%s\n%s", code, out, errOut)
	}
	fg := exec.Command(srv.Bin, "--nodaemonize", "-y", srv.ConfPath)
	fg.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := fg.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fg.Process.Kill(); _ = fg.Wait() })
	if err := srv.WaitServes(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatalf("foreground php-fpm: %v\n%s", err, srv.ErrorLogText())
	}
	master, err := proctest.Identify(fg.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := fpmCLI(t, srv, state, "reload", fpmService)
	if code != exitOK || !strings.Contains(out, "reloaded "+fpmService) {
		t.Fatalf("reload: exit %d, want 0 (reloaded in place)\n%s\n%s", code, out, errOut)
	}
	if !master.Alive() || srv.MasterPID() != master.PID {
		t.Fatalf("the reload replaced the foreground master %d (pidfile: %d)", master.PID, srv.MasterPID())
	}
	mustServe(t, srv, "after the reload")
}
