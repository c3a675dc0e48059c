package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/safe-restart/safe-restart/internal/fpmtest"
	"github.com/safe-restart/safe-restart/internal/nginxtest"
	"github.com/safe-restart/safe-restart/internal/nstest"
	"github.com/safe-restart/safe-restart/internal/proctest"
	"github.com/safe-restart/safe-restart/internal/srvtest"
)

// runRestarts is how many full restarts each run handoff test forces
// under load.
const runRestarts = 2

// healthScript fails (503) while the file "unhealthy" exists beside it:
// the test's way to make run restart php-fpm through its health check.
const healthScript = "<?php if (file_exists(__DIR__ . '/unhealthy')) { http_response_code(503); } echo \"health\\n\";\n"

// servingPID returns the child's pid of generation gen, from run's
// "serving" line.
func servingPID(t *testing.T, r *runProc, gen int) int {
	t.Helper()
	for _, ev := range r.await(gen, 60*time.Second, "serving generation", event("serving", "")) {
		if ev.num("gen") == float64(gen) {
			return int(ev.num("pid"))
		}
	}
	t.Fatalf("no serving line for generation %d:\n%s", gen, r.output())
	return 0
}

// handoffLine returns run's "handoff" line about generation gen's start.
func handoffLine(t *testing.T, r *runProc, gen int) logEvent {
	t.Helper()
	return r.await(1, 10*time.Second, "handoff line of the start", func(e logEvent) bool {
		_, said := e["inherit"]
		return e.str("event") == "handoff" && e.num("gen") == float64(gen) && said
	})[0]
}

// TestRunFPMHandoff: php-fpm under run behind nginx, on TCP and on a unix
// socket, with 16 clients going through nginx. Each time the health check
// fails, run restarts php-fpm (a crash restart: the graceful ladder, a
// backoff, a new master); the new master inherits the held socket
// (php-fpm logs "using inherited socket") and no request fails: the
// connections made meanwhile queue on the held socket, and the unix path
// stays the same socket file (a bind mount makes php-fpm's unlink fail).
// Once run ends, the spare link is gone.
func TestRunFPMHandoff(t *testing.T) {
	nstest.RequireBinaries(t, fpmtest.Binary, "nginx")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	overTCPAndUnix(t, func(t *testing.T, name string, unix bool) {
		srv := fpmtest.Prepare(t, fpmtest.Config{Children: 4, Unix: unix, Scripts: map[string]string{"health.php": healthScript}})
		front := fpmFront(t, srv)
		r := fpmRun(t, srv, "--health-url", "http://"+front.Addr+"/health.php", "--health-interval", "100ms",
			"--health-timeout", "2s", "--health-failures", "2", "--graceful-timeout", "10s", "--backoff", "300ms")
		sockFile, _ := os.Stat(srv.Listen)
		stop := load(t, 16, func() bool {
			c, body, err := front.Get("/index.php")
			return err == nil && c == 200 && strings.HasPrefix(body, "fpmtest ok")
		})
		for i := range runRestarts {
			gen := i + 1
			old := servingPID(t, r, gen)
			failHealth(t, r, srv, gen)
			if pid := servingPID(t, r, gen+1); pid == old || pid == 0 {
				t.Fatalf("restart %d: the child is %d, was %d", gen, pid, old)
			}
			if ev := handoffLine(t, r, gen+1); ev["inherit"] != true {
				t.Fatalf("restart %d: %v; want the start on the held socket\n%s", gen, ev, r.output())
			}
			if now, err := os.Stat(srv.Listen); unix && (err != nil || !os.SameFile(sockFile, now)) {
				t.Fatalf("restart %d: the unix socket path is not the held socket's file any more (%v)", gen, err)
			}
			// As root in the test's namespaces the bind mount guards the
			// path through the stop: php-fpm's unlink fails, nothing is
			// linked back (a link back comes a moment late).
			if unix && strings.Contains(r.output(), "unlinked its unix socket") {
				t.Fatalf("restart %d: the unix socket path was unlinked, not guarded:\n%s", gen, r.output())
			}
			mustServe(t, srv, "directly after a restart under run")
		}
		ok, failed := stop()
		if failed != 0 {
			t.Fatalf("during %d restarts: %d ok, %d failed; want none failed\n%s\n%s\n%s", runRestarts, ok, failed, r.output(), srv.ErrorLogText(), front.ErrorLogText())
		}
		if n := strings.Count(srv.ErrorLogText(), "using inherited socket fd=3"); n != runRestarts {
			t.Fatalf("php-fpm logged %d× using inherited socket, want %d:\n%s", n, runRestarts, srv.ErrorLogText())
		}
		t.Logf("during %d restarts over %s: %d requests ok, none failed", runRestarts, name, ok)
		stopRun(t, r)
		if spares, _ := filepath.Glob(filepath.Join(srv.Dir, ".*.safe-restart-*")); len(spares) != 0 {
			t.Fatalf("spare links left after run ended: %v", spares)
		}
	})
}

// failHealth makes the health check fail until run restarts generation
// gen, then heals it.
func failHealth(t *testing.T, r *runProc, srv *fpmtest.Server, gen int) {
	t.Helper()
	flag := filepath.Join(srv.DocRoot, "unhealthy")
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r.await(1, 30*time.Second, "health restart", func(e logEvent) bool {
		return e.str("event") == "restart" && e.num("gen") == float64(gen) && strings.Contains(e.str("reason"), "health check failed")
	})
	if err := os.Remove(flag); err != nil {
		t.Fatal(err)
	}
}

// stopRun sends TERM to run and waits for its exit, 0.
func stopRun(t *testing.T, r *runProc) {
	t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := r.exit(30 * time.Second); code != 0 {
		t.Fatalf("exit %d after TERM, want 0:\n%s", code, r.output())
	}
}

// nginxRun starts `nginx -g 'daemon off;' -c CONF` under run with the
// nginx profile and args, and waits until it serves.
func nginxRun(t *testing.T, srv *nginxtest.Server, args ...string) *runProc {
	t.Helper()
	argv := append([]string{"--service", "nginx", "--conf", srv.ConfPath, "--state-dir", t.TempDir(), "--backoff", "300ms"}, args...)
	r := safeRestartRun(t, append(argv, "--", srv.Bin, "-g", "daemon off;", "-c", srv.ConfPath)...)
	servingPID(t, r, 1)
	return r
}

// killChild SIGKILLs generation gen's child, whose pid run logged, and
// waits until run restarted it; it returns the new child's pid.
func killChild(t *testing.T, r *runProc, srv *nginxtest.Server, gen int) int {
	t.Helper()
	pid := servingPID(t, r, gen)
	if st, err := proctest.Stat(pid); err != nil || st.Exe != srv.Bin || !st.Alive() {
		t.Fatalf("generation %d's child %d: %+v, %v; want a live nginx", gen, pid, st, err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	next := servingPID(t, r, gen+1)
	if next == pid {
		t.Fatalf("generation %d runs the killed child %d", gen+1, pid)
	}
	return next
}

// nginxLoad runs 16 clients opening new connections to srv's TCP
// listener; stop returns how many requests were served, how many failed,
// and how many of those failed because the connection was refused.
func nginxLoad(t *testing.T, srv *nginxtest.Server) (stop func() (ok, failed, refused int)) {
	t.Helper()
	var refused atomic.Int64
	stopLoad := load(t, 16, func() bool {
		c, body, err := srv.Get("/")
		if errors.Is(err, syscall.ECONNREFUSED) {
			refused.Add(1)
		}
		return err == nil && c == 200 && body == nginxtest.IndexBody
	})
	return func() (int, int, int) {
		ok, failed := stopLoad()
		return ok, failed, int(refused.Load())
	}
}

// TestRunNginxHandoff: nginx in the foreground under run, 16 clients
// connecting anew. Each kill -9 of its master (the pid run logged) is
// followed by a crash restart after the backoff that inherits the held
// TCP socket: no connection is refused, those made while no master ran
// queue and are answered.
func TestRunNginxHandoff(t *testing.T) {
	nstest.RequireBinaries(t, "nginx")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := nginxtest.Prepare(t, nginxtest.Options{})
	r := nginxRun(t, srv)
	stop := nginxLoad(t, srv)
	for i := range runRestarts {
		killChild(t, r, srv, i+1)
		if ev := handoffLine(t, r, i+2); ev["inherit"] != true || fmt.Sprint(ev["env"]) != "[NGINX=3;]" {
			t.Fatalf("restart %d: %v; want the start on the held socket\n%s", i+1, ev, r.output())
		}
	}
	ok, failed, refused := stop()
	if refused != 0 {
		t.Fatalf("during %d crash restarts: %d ok, %d failed, %d refused; want none refused\n%s\n%s", runRestarts, ok, failed, refused, r.output(), srv.ErrorLogText())
	}
	t.Logf("during %d crash restarts: %d requests ok, %d failed, %d refused", runRestarts, ok, failed, refused)
	stopRun(t, r)
}

// TestRunNginxNoHandoff: with --no-handoff run restarts nginx after a
// kill -9 as before: the start binds its own socket, and the log says
// why.
func TestRunNginxNoHandoff(t *testing.T) {
	nstest.RequireBinaries(t, "nginx")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := nginxtest.Prepare(t, nginxtest.Options{})
	r := nginxRun(t, srv, "--no-handoff")
	stop := nginxLoad(t, srv)
	killChild(t, r, srv, 1)
	ev := handoffLine(t, r, 2)
	if ev["inherit"] != false || ev.str("reason") != "disabled (--no-handoff)" {
		t.Fatalf("handoff line %v: want a plain start because of --no-handoff", ev)
	}
	for _, e := range r.events() {
		if e.str("event") == "handoff" && e.str("message") != ev.str("message") {
			t.Errorf("with --no-handoff: %v", e)
		}
	}
	if c, _, err := srv.Get("/"); err != nil || c != 200 {
		t.Fatalf("after the plain restart: %d, %v", c, err)
	}
	ok, failed, refused := stop()
	t.Logf("plain crash restart: %d requests ok, %d failed, %d refused", ok, failed, refused)
	stopRun(t, r)
}

// TestRunFPMHandoffAfterReload: a verified reload that moves php-fpm to
// another port makes run hold the new socket instead of the old one
// (whose port then refuses connections: no held socket queues clients
// that no child serves), and the crash restart after a kill -9 of the
// master (the pid run logged) inherits the new socket.
func TestRunFPMHandoffAfterReload(t *testing.T) {
	nstest.RequireBinaries(t, fpmtest.Binary)
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := fpmtest.Prepare(t, fpmtest.Config{})
	r := fpmRun(t, srv, "--backoff", "100ms")
	moved := srvtest.FreeAddr(t)
	writeConf(t, srv.ConfPath, strings.Replace(readFile(t, srv.ConfPath), "listen = "+srv.Listen, "listen = "+moved, 1))
	if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	r.await(1, 30*time.Second, "verified reload", event("reload", "reload verified"))
	held := r.await(1, 10*time.Second, "the held set after the reload", func(e logEvent) bool {
		return e.str("event") == "handoff" && fmt.Sprint(e["dropped"]) == "["+srv.Listen+"]"
	})[0]
	if fmt.Sprint(held["listeners"]) != "["+moved+"]" {
		t.Fatalf("after the reload run holds %v, want only %s", held["listeners"], moved)
	}
	if _, err := net.DialTimeout("tcp", srv.Listen, time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("the old port after the reload: %v; want it refused (no socket held)", err)
	}
	if err := syscall.Kill(servingPID(t, r, 1), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	servingPID(t, r, 2)
	if ev := handoffLine(t, r, 2); ev["inherit"] != true || fmt.Sprint(ev["listeners"]) != "["+moved+"]" {
		t.Fatalf("the restart after kill -9: %v; want it to inherit %s", ev, moved)
	}
	if c, body, err := fpmtest.FastCGIGet(moved, srv.DocRoot, "/index.php", 10*time.Second); err != nil || c != 200 || !strings.HasPrefix(body, "fpmtest ok") {
		t.Fatalf("on %s after the restart: %d %q %v", moved, c, body, err)
	}
	stopRun(t, r)
}
