package main

// The adversarial cases: hostile and unlucky inputs (pidfiles that name
// the wrong process or are no file at all, signals that cannot stop or
// reload anything, interrupted operations), each against a real server in
// private namespaces. Nothing is signalled that is not this instance's
// master, no command hangs, and the server serves after each.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/safe-restart/safe-restart/internal/apachetest"
	"github.com/safe-restart/safe-restart/internal/fpmtest"
	"github.com/safe-restart/safe-restart/internal/nginxtest"
	"github.com/safe-restart/safe-restart/internal/nstest"
	"github.com/safe-restart/safe-restart/internal/proctest"
	"github.com/safe-restart/safe-restart/ipcguard"
)

// runCLIWithin is runCLI, failing the test when the command has not
// returned within d (the command is left running: the test binary exits
// with the failure).
func runCLIWithin(t *testing.T, d time.Duration, args ...string) (int, string, string) {
	t.Helper()
	type result struct {
		code     int
		out, err string
	}
	done := make(chan result, 1)
	go func() {
		code, out, errOut := runCLI(t, args...)
		done <- result{code, out, errOut}
	}()
	select {
	case r := <-done:
		return r.code, r.out, r.err
	case <-time.After(d):
		t.Fatalf("%v: still running after %s", args, d)
	}
	return 0, "", ""
}

// nginxGeneration is an nginx master and its workers, to find untouched
// after a command that must change nothing.
type nginxGeneration struct {
	srv     *nginxtest.Server
	master  proctest.Proc
	workers []int
}

// generationOf waits for srv's master to have its workers alone.
func generationOf(t *testing.T, srv *nginxtest.Server) nginxGeneration {
	t.Helper()
	return nginxGeneration{srv, nginxMaster(t, srv), settledWorkers(t, srv)}
}

// untouched fails the test unless the same master and workers serve.
func (g nginxGeneration) untouched(t *testing.T, what string) {
	t.Helper()
	if now := nginxMaster(t, g.srv); now != g.master || !slices.Equal(workerPIDs(g.srv), g.workers) {
		t.Fatalf("%s: master %d workers %v, want %d %v untouched", what, now.PID, workerPIDs(g.srv), g.master.PID, g.workers)
	}
}

// TestHostilePIDFiles: a pidfile that names a worker of the live master,
// or that is a FIFO (whose open would block), /dev/zero (which never
// ends) or a directory, makes stop, start, restart and reload refuse at once
// (exit 3), saying what is wrong, with nothing signalled: the same master
// and workers serve after each. status finds the master by its listening
// sockets and says the pidfile is wrong (but for the directory, which
// nginx's own config test refuses).
func TestHostilePIDFiles(t *testing.T) {
	nstest.RequireBinaries(t, "nginx")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := nginxtest.Start(t, nginxtest.Options{})
	conf := []string{"nginx", "--conf", srv.ConfPath, "--state-dir", t.TempDir()}
	gen := generationOf(t, srv)
	cases := []struct {
		name, says string
		plant      func() error
	}{
		{"a worker's pid", fmt.Sprintf("a child of pid %d", gen.master.PID),
			func() error { return os.WriteFile(srv.PidFile, []byte(strconv.Itoa(gen.workers[0])+"\n"), 0o644) }},
		{"a FIFO", "is a named pipe (FIFO), not a regular file", func() error { return syscall.Mkfifo(srv.PidFile, 0o644) }},
		{"/dev/zero", "is a character device, not a regular file", func() error { return os.Symlink("/dev/zero", srv.PidFile) }},
		// nginx's own config test opens the pidfile: every command, status
		// too, is refused quoting it ("(21: Is a directory)").
		{"a directory", "s a directory", func() error { return os.Mkdir(srv.PidFile, 0o755) }},
	}
	for _, c := range cases {
		for _, cmd := range []string{"stop", "start", "restart", "reload", "status"} {
			if err := os.RemoveAll(srv.PidFile); err != nil {
				t.Fatal(err)
			}
			if err := c.plant(); err != nil {
				t.Fatal(err)
			}
			code, out, errOut := runCLIWithin(t, time.Minute, append([]string{cmd}, conf...)...)
			if err := os.RemoveAll(srv.PidFile); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(srv.PidFile, []byte(strconv.Itoa(gen.master.PID)+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			want := exitRefused
			if cmd == "status" && c.name != "a directory" {
				want = exitOK
				if !strings.Contains(out, "running, master "+strconv.Itoa(gen.master.PID)) || !strings.Contains(out, "the pidfile does not name the master") {
					t.Errorf("%s, status: the master is not found by its listeners, or the pidfile not called wrong:\n%s", c.name, out)
				}
			}
			if code != want || !strings.Contains(out+errOut, c.says) {
				t.Errorf("%s, %s: exit %d, want %d saying %q\n%s\n%s", c.name, cmd, code, want, c.says, out, errOut)
			}
			gen.untouched(t, c.name+", "+cmd)
			if status, body, err := srv.Get("/"); status != 200 || body != nginxtest.IndexBody || err != nil {
				t.Fatalf("%s, %s: GET / %d %q %v", c.name, cmd, status, body, err)
			}
		}
	}
}

// TestHostileSignals: signals that would freeze a server or reload
// nothing are refused before anything runs (exit 2), naming the problem,
// with the server untouched: nginx stopped with a --ladder of STOP, TSTP
// or CONT, or an empty one; a daemon whose service file reloads with STOP
// or KILL, stops gracefully with TSTP, has an empty ladder, or names a
// /proc file as its pidfile.
func TestHostileSignals(t *testing.T) {
	nstest.RequireBinaries(t, "nginx")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := nginxtest.Start(t, nginxtest.Options{})
	gen := generationOf(t, srv)
	for _, ladder := range []string{"STOP:1s", "TERM:10s,TSTP:1s", "CONT:5s,KILL:1s:all", ""} {
		code, out, errOut := runCLI(t, "stop", "nginx", "--conf", srv.ConfPath, "--state-dir", t.TempDir(), "--ladder", ladder)
		if code != exitUsage || !strings.Contains(errOut, "bad --ladder") {
			t.Errorf("stop --ladder %s: exit %d, want %d (bad --ladder)\n%s\n%s", ladder, code, exitUsage, out, errOut)
		}
		gen.untouched(t, "stop --ladder "+ladder)
	}

	d := daemonService(t)
	d.cli(t, exitOK, "start", d.svc)
	first := d.master(t)
	good, err := os.ReadFile(d.svc)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ from, to, says string }{
		{`reload = "HUP"`, `reload = "STOP"`, "signals.reload: SIGSTOP reloads no daemon"},
		{`reload = "HUP"`, `reload = "KILL"`, "signals.reload: SIGKILL reloads no daemon"},
		{`graceful = "QUIT"`, `graceful = "TSTP"`, "stop.graceful: SIGTSTP freezes a process"},
		{`ladder = "TERM:10s,KILL:5s:all"`, `ladder = ""`, "stop.ladder: empty"},
		{`pidfile = "` + d.pidFile + `"`, `pidfile = "/proc/1/stat"`, "a file of the kernel's /proc"},
	} {
		bad := strings.Replace(string(good), c.from, c.to, 1)
		if bad == string(good) {
			t.Fatalf("the service file has no %s", c.from)
		}
		if err := os.WriteFile(d.svc, []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, cmd := range []string{"reload", "stop", "restart"} {
			_, errOut := d.cli(t, exitUsage, cmd, d.svc)
			if !strings.Contains(errOut, c.says) {
				t.Errorf("%s with %s: the error does not say %q:\n%s", cmd, c.to, c.says, errOut)
			}
			if now := d.master(t); now != first {
				t.Fatalf("%s with %s: master %d, want %d untouched", cmd, c.to, now.PID, first.PID)
			}
		}
	}
	if err := os.WriteFile(d.svc, good, 0o644); err != nil {
		t.Fatal(err)
	}
	d.wantServes(t, 1)
	d.cli(t, exitOK, "stop", d.svc)
}

// interruptAt runs safe-restart with args as a process of its own, sends
// it sig once it has written n log lines (if it has not ended first), and
// returns its exit code and its log.
func interruptAt(t *testing.T, args []string, n int, sig syscall.Signal) (int, []string) {
	t.Helper()
	code, lines, _ := signalWhen(t, args, sig, func(lines []string) bool { return len(lines) >= n })
	return code, lines
}

// signalWhen runs safe-restart with args as a process of its own, sends
// it sig once when its log so far satisfies when, and returns its exit
// code (-1 when a signal ended it), its log, and whether sig was sent.
func signalWhen(t *testing.T, args []string, sig syscall.Signal, when func(lines []string) bool) (int, []string, bool) {
	t.Helper()
	cmd := selfCommand(args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var lines []string
	sent := false
	for sc := bufio.NewScanner(stderr); sc.Scan(); {
		lines = append(lines, sc.Text())
		if !sent && when(lines) {
			sent = cmd.Process.Signal(sig) == nil
		}
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, lines, sent
	case errors.As(err, &ee):
		return ee.ExitCode(), lines, sent
	}
	t.Fatal(err)
	return 0, nil, false
}

// TestHostileInterruptedRestart: a restart SIGINTed or SIGTERMed after
// any of its log lines (a cancelled deploy job; the lines come in
// batches, so the moments spread over the run) leaves exactly one master
// serving: Apache (prefork, started by its own -k start), nginx and
// php-fpm, with the overlap and with --no-overlap (Apache's stop and
// start, nginx's and php-fpm's socket handoff). A failed run's last line
// says which master serves.
func TestHostileInterruptedRestart(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl", "nginx", fpmtest.Binary)
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	apache := apachetest.Start(t, apachetest.Config{MPM: "prefork"})
	ng := nginxtest.Start(t, nginxtest.Options{})
	fpm := fpmtest.Start(t, fpmtest.Config{})
	for _, s := range []struct {
		service, bin, conf string
		get                func() (int, string, error)
	}{
		{"apache2", apache.Bin, apache.ConfPath, func() (int, string, error) { return apache.Get("/") }},
		{"nginx", ng.Bin, ng.ConfPath, func() (int, string, error) { return ng.Get("/") }},
		{fpmService, fpm.Bin, fpm.ConfPath, func() (int, string, error) { return fpm.Get("/index.php") }},
	} {
		state := t.TempDir()
		for _, mode := range [][]string{nil, {"--no-overlap"}} {
			args := append([]string{"restart", s.service, "--conf", s.conf, "--state-dir", state}, mode...)
			code, whole := interruptAt(t, args, 1<<30, syscall.SIGINT)
			if code != exitOK {
				t.Fatalf("%s %v, uninterrupted: exit %d\n%s", s.service, mode, code, strings.Join(whole, "\n"))
			}
			for n := 1; n <= len(whole); n++ {
				sig := []syscall.Signal{syscall.SIGINT, syscall.SIGTERM}[n%2]
				code, lines := interruptAt(t, args, n, sig)
				masters := mastersOf(t, s.bin)
				status, _, err := s.get()
				if masters != 1 || status != 200 || err != nil {
					t.Errorf("%s %v, %s after line %d: exit %d, %d masters, answer %d %v; log:\n%s",
						s.service, mode, sig, n, code, masters, status, err, strings.Join(lines, "\n"))
					if masters == 0 || err != nil {
						if code, out, errOut := runCLI(t, "start", s.service, "--conf", s.conf, "--state-dir", state); code != exitOK {
							t.Fatalf("start after the failure: exit %d\n%s\n%s", code, out, errOut)
						}
					}
				}
				if last := lines[len(lines)-1]; code != exitOK && !strings.Contains(last, "still serves") && !strings.Contains(last, "serves on as before") {
					t.Errorf("%s %v, %s after line %d: exit %d, and the last line does not say what serves: %s", s.service, mode, sig, n, code, last)
				}
			}
		}
	}
}

// TestHostileStateDir: a state directory another user could write (mode
// 0777, or owned by www-data) is refused before anything runs (exit 2,
// naming it); a stop record planted in a sound one, naming a process that
// is not the server's master (a sleep, a worker), is refused (exit 3)
// with that process and the server untouched, and left in place.
func TestHostileStateDir(t *testing.T) {
	nstest.RequireBinaries(t, "nginx", "sleep")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := nginxtest.Start(t, nginxtest.Options{})
	gen := generationOf(t, srv)
	open := t.TempDir()
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	foreign := t.TempDir()
	if err := os.Chown(foreign, 33, 33); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{open, foreign} {
		for _, cmd := range []string{"stop", "restart", "start", "status"} {
			code, out, errOut := runCLI(t, cmd, "nginx", "--conf", srv.ConfPath, "--state-dir", dir)
			if code != exitUsage || !strings.Contains(errOut, "unsafe state directory: "+dir) {
				t.Errorf("%s in %s: exit %d, want %d naming the directory\n%s\n%s", cmd, dir, code, exitUsage, out, errOut)
			}
			gen.untouched(t, cmd+" in "+dir)
		}
	}

	sleep := exec.Command("sleep", "600")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sleep.Process.Kill(); _ = sleep.Wait() }()
	state := t.TempDir()
	for _, pid := range []int{sleep.Process.Pid, gen.workers[0]} {
		record := fmt.Sprintf(`{"service":"nginx","master":%s}`, procJSON(t, pid))
		path := state + "/nginx.stopping.json"
		if err := os.WriteFile(path, []byte(record), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, cmd := range []string{"stop", "start", "restart"} {
			code, out, errOut := runCLI(t, cmd, "nginx", "--conf", srv.ConfPath, "--state-dir", state)
			if code != exitRefused || !strings.Contains(errOut, "remove it") || !strings.Contains(errOut, path) {
				t.Errorf("%s with a record naming pid %d: exit %d, want %d naming the record\n%s\n%s", cmd, pid, code, exitRefused, out, errOut)
			}
			gen.untouched(t, fmt.Sprintf("%s with a record naming pid %d", cmd, pid))
			if _, err := os.Stat(path); err != nil {
				t.Fatalf("%s removed the record: %v", cmd, err)
			}
		}
	}
	if err := sleep.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the sleep a planted record named was signalled: %v", err)
	}
}

// procJSON is the identity of pid as a stop record holds it.
func procJSON(t *testing.T, pid int) string {
	t.Helper()
	p, err := ipcguard.ReadProc("/proc", pid)
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestHostileExitCodes: refusals where nothing was touched are exit 3 or
// 2, not 1: a state directory on a read-only file system, a symlink where
// the lock goes, a service name too long for a file name; nginx's status
// shows no "-1 reload(s)" and no semaphore lines (it has no IPC); a
// reload of a stopped nginx recovers it (exit 4) and says so at level
// warn, not error.
func TestHostileExitCodes(t *testing.T) {
	nstest.RequireBinaries(t, "nginx")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := nginxtest.Start(t, nginxtest.Options{})
	master := nginxMaster(t, srv)
	conf := []string{"--conf", srv.ConfPath}
	readOnly := t.TempDir()
	if err := syscall.Mount("tmpfs", readOnly, "tmpfs", syscall.MS_RDONLY, "mode=0755"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(readOnly, 0) })
	linked := t.TempDir()
	if err := os.Mkdir(linked+"/lock", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", linked+"/lock/nginx.lock"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		code int
		says string
	}{
		{append([]string{"restart", "nginx", "--state-dir", readOnly}, conf...), exitRefused, "cannot use the state directory"},
		{append([]string{"stop", "nginx", "--state-dir", linked}, conf...), exitRefused, "is a symlink, which could redirect the lock"},
		{[]string{"stop", strings.Repeat("n", 300), "--state-dir", t.TempDir()}, exitUsage, "unknown service"},
	} {
		code, out, errOut := runCLI(t, c.args...)
		if code != c.code || !strings.Contains(errOut, c.says) {
			t.Errorf("%.60q: exit %d, want %d saying %q\n%s\n%s", c.args, code, c.code, c.says, out, errOut)
		}
		if now := nginxMaster(t, srv); now != master {
			t.Fatalf("%.60q: master %d, want %d untouched", c.args, now.PID, master.PID)
		}
	}
	state := t.TempDir()
	code, out, errOut := runCLI(t, append([]string{"status", "nginx", "--state-dir", state}, conf...)...)
	if code != exitOK || strings.Contains(out, "-1 ") || strings.Contains(out, "semaphore") {
		t.Errorf("status: exit %d, with -1 counts or semaphore lines for nginx:\n%s\n%s", code, out, errOut)
	}
	if code, out, errOut := runCLI(t, append([]string{"stop", "nginx", "--state-dir", state}, conf...)...); code != exitOK {
		t.Fatalf("stop: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, append([]string{"reload", "nginx", "--state-dir", state}, conf...)...)
	if code != exitRecovered || !strings.Contains(errOut, `"level":"warn","exit_code":4`) || strings.Contains(errOut, `"level":"error"`) {
		t.Errorf("reload of a stopped nginx: exit %d, want %d logged at warn, no error line\n%s\n%s", code, exitRecovered, out, errOut)
	}
}

// TestHostileOtherInstance: a pidfile that names the master of another
// instance of the same binary (another nginx, started with its own
// configuration) makes stop, restart and reload with this configuration
// refuse (exit 3, naming both configurations), with both instances
// untouched; status finds this instance's master by its listeners.
func TestHostileOtherInstance(t *testing.T) {
	nstest.RequireBinaries(t, "nginx")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	a := nginxtest.Start(t, nginxtest.Options{})
	b := nginxtest.Start(t, nginxtest.Options{})
	masterA, masterB := nginxMaster(t, a), nginxMaster(t, b)
	conf := []string{"nginx", "--conf", a.ConfPath, "--state-dir", t.TempDir()}
	for _, cmd := range []string{"stop", "restart", "reload", "status"} {
		if err := os.WriteFile(a.PidFile, []byte(strconv.Itoa(masterB.PID)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := runCLI(t, append([]string{cmd}, conf...)...)
		if err := os.WriteFile(a.PidFile, []byte(strconv.Itoa(masterA.PID)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		want := exitRefused
		if cmd == "status" {
			want = exitOK
			if !strings.Contains(out, "running, master "+strconv.Itoa(masterA.PID)) {
				t.Errorf("status: this instance's master %d is not found by its listeners:\n%s", masterA.PID, out)
			}
		}
		says := "the master of another instance: it was started with " + b.ConfPath + ", not " + a.ConfPath
		if code != want || !strings.Contains(out+errOut, says) {
			t.Errorf("%s: exit %d, want %d saying %q\n%s\n%s", cmd, code, want, says, out, errOut)
		}
		if nowA, nowB := nginxMaster(t, a), nginxMaster(t, b); nowA != masterA || nowB != masterB {
			t.Fatalf("%s: masters %d and %d, want %d and %d untouched", cmd, nowA.PID, nowB.PID, masterA.PID, masterB.PID)
		}
		for _, s := range []*nginxtest.Server{a, b} {
			if status, _, err := s.Get("/"); status != 200 || err != nil {
				t.Fatalf("%s: GET / on %s: %d %v", cmd, s.Addr, status, err)
			}
		}
	}
}
