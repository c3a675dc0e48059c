package main

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/safe-restart/safe-restart/internal/fpmtest"
	"github.com/safe-restart/safe-restart/internal/nginxtest"
	"github.com/safe-restart/safe-restart/internal/nstest"
)

// fpmRun starts php-fpm in the foreground (-F) under safe-restart run
// with the php8.2-fpm profile, and waits until it serves.
func fpmRun(t *testing.T, srv *fpmtest.Server, args ...string) *runProc {
	t.Helper()
	argv := append([]string{"--service", fpmService, "--conf", srv.ConfPath, "--state-dir", t.TempDir()}, args...)
	argv = append(argv, "--", srv.Bin, "-F", "-y", srv.ConfPath)
	r := safeRestartRun(t, argv...)
	r.await(1, 30*time.Second, "serving", event("serving", ""))
	return r
}

// TestRunFPMSignals: php-fpm -F under run. HUP is a verified reload
// (USR2 re-executes the master in place: same pid, new workers); USR1
// reopens the log (a renamed log is created again); TERM climbs the
// ladder, leaves no php-fpm process, and safe-restart exits with the
// child's status, 0.
func TestRunFPMSignals(t *testing.T) {
	nstest.RequireBinaries(t, fpmtest.Binary)
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := fpmtest.Prepare(t, fpmtest.Config{})
	r := fpmRun(t, srv, "--graceful-timeout", "5s")
	master := srv.MasterPID()
	mustServe(t, srv, "under run")
	workers := srv.Workers()

	if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	ev := r.await(1, 30*time.Second, "verified reload", event("reload", "reload verified"))[0]
	if ev.num("pid") != float64(master) || srv.MasterPID() != master || ev.str("signal") != "SIGUSR2" {
		t.Errorf("reload: %v, master now %d; want SIGUSR2 to master %d, which keeps its pid", ev, srv.MasterPID(), master)
	}
	for _, w := range srv.Workers() {
		for _, old := range workers {
			if w.PID == old.PID {
				t.Errorf("worker %d survived the reload", w.PID)
			}
		}
	}
	mustServe(t, srv, "after the reload")

	if err := os.Rename(srv.ErrorLog, srv.ErrorLog+".1"); err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	r.await(1, 10*time.Second, "reopen", event("reopen", ""))
	deadline := time.Now().Add(10 * time.Second)
	for readFile(t, srv.ErrorLog) == "" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(readFile(t, srv.ErrorLog), "error log file re-opened") {
		t.Errorf("after USR1 the log was not reopened: %q", readFile(t, srv.ErrorLog))
	}

	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := r.exit(30 * time.Second); code != 0 {
		t.Fatalf("exit %d after TERM, want php-fpm's 0:\n%s", code, r.output())
	}
	if ps := srv.Processes(); len(ps) != 0 {
		t.Errorf("php-fpm processes left after TERM: %+v", ps)
	}
	r.await(1, time.Second, "exit line", func(e logEvent) bool {
		return e.str("event") == "exit" && e.num("exit_code") == 0 && e.str("reason") == "safe-restart was asked to stop"
	})
}

// hangScript never returns: a worker that runs it is stuck.
const hangScript = "<?php sleep(3600);\n"

// TestRunHealthRestartsHungPool: nginx in front of php-fpm (under run).
// Every worker hangs in a request while the master lives: the health
// check through nginx fails (the master still accepts on its socket), 3
// failures in a row restart the child, and the site serves again.
func TestRunHealthRestartsHungPool(t *testing.T) {
	nstest.RequireBinaries(t, fpmtest.Binary, "nginx")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := fpmtest.Prepare(t, fpmtest.Config{Scripts: map[string]string{"hang.php": hangScript}})
	web := nginxtest.Start(t, nginxtest.Options{FastCGIPass: srv.Listen, Root: srv.DocRoot})
	health := "http://" + web.Addr + "/index.php"
	r := fpmRun(t, srv, "--health-url", health, "--health-interval", "200ms", "--health-timeout", "1s",
		"--health-failures", "3", "--graceful-timeout", "1s")
	first := srv.MasterPID()
	if c, body, err := web.Get("/index.php"); err != nil || c != 200 || !strings.HasPrefix(body, "fpmtest ok") {
		t.Fatalf("through nginx: %d %q %v", c, body, err)
	}
	for range srv.Config.Children {
		go func() { _, _, _ = srv.Get("/hang.php") }() // returns when the restart kills the worker
	}
	ev := r.await(1, 60*time.Second, "restart on failed health", event("restart", "restarting the child"))[0]
	if !strings.Contains(ev.str("reason"), "health check failed 3 times in a row") {
		t.Errorf("restart reason %q, want the health failures", ev.str("reason"))
	}
	if n := len(r.events()); n == 0 {
		t.Fatal("no log")
	}
	r.await(2, 30*time.Second, "second serving generation", event("serving", ""))
	if m := srv.MasterPID(); m == first || m == 0 {
		t.Errorf("master %d after the restart (was %d)", m, first)
	}
	if c, body, err := web.Get("/index.php"); err != nil || c != 200 || !strings.HasPrefix(body, "fpmtest ok") {
		t.Fatalf("through nginx after the restart: %d %q %v\n%s", c, body, err, r.output())
	}
	fails := r.await(3, time.Second, "health failure lines", event("health", "health check failed"))
	if fails[0].num("gen") != 1 {
		t.Errorf("health failures %v, want them on generation 1", fails)
	}
}
