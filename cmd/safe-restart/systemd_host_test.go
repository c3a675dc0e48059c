//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/safe-restart/safe-restart/internal/fpmtest"
	"github.com/safe-restart/safe-restart/internal/nstest"
	"github.com/safe-restart/safe-restart/internal/systemdtest"
)

// systemdServer is a server as Debian's package installs it: its unit
// file (used unchanged), pidfile and binary.
type systemdServer struct {
	service, unit, pidFile, binary string
	logrotate                      string // examples/logrotate file for it
	tmpfiles                       string // its package's tmpfiles.d file, "" for none
	// serves reports whether the server answers a client.
	serves func(h *systemdtest.Host) error
}

var systemdServers = []systemdServer{
	{"apache2", "apache2.service", "/run/apache2/apache2.pid", "/usr/sbin/apache2", "apache2", "", httpServes},
	{"nginx", "nginx.service", "/run/nginx.pid", "/usr/sbin/nginx", "nginx", "", httpServes},
	{"php8.2-fpm", "php8.2-fpm.service", "/run/php/php8.2-fpm.pid", "/usr/sbin/php-fpm8.2", "php-fpm", "php8.2-fpm.conf", fpmServes},
}

// httpServes GETs / on port 80, where Debian's default site listens.
func httpServes(*systemdtest.Host) error {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://127.0.0.1/")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return fmt.Errorf("GET /: %s", resp.Status)
	}
	return nil
}

// fpmServes runs a PHP script through Debian's pool socket.
func fpmServes(h *systemdtest.Host) error {
	if err := os.WriteFile(h.Root()+"/run/systemdtest/ping.php", []byte("<?php echo 'pong';"), 0o644); err != nil {
		return err
	}
	code, body, err := fpmtest.FastCGIGet(h.Root()+"/run/php/php8.2-fpm.sock", "/run/systemdtest", "/ping.php", 5*time.Second)
	if err == nil && (code != 200 || body != "pong") {
		err = fmt.Errorf("ping.php: %d %q", code, body)
	}
	return err
}

// TestSystemdHost runs every operation against each server started by a
// real systemd from Debian's own unit file, with safe-restart run from
// outside the unit as deploys, cron and logrotate run it, and checks
// after each that systemd's view is the truth (README.md invariant 8):
// the unit is active exactly when the server serves, its MainPID is the
// pidfile's master, every server process is in the unit's cgroup, and a
// stop leaves it inactive with no job queued (nothing restarts behind
// safe-restart's back). The exit codes are the README's. On Debian's
// configuration status reports no drift, and the reload's and restart's
// receipts are printed (the reload's with nothing refused).
func TestSystemdHost(t *testing.T) {
	eachServer(t, []string{"logrotate"}, func(t *testing.T, s systemdServer) {
		h, first := s.started(t)

		out := s.safeRestart(t, h, 0, "status", s.service)
		if !strings.Contains(out, "systemd: unit "+s.unit+" active (running), MainPID "+strconv.Itoa(first)) {
			t.Errorf("status does not report the unit:\n%s", out)
		}
		// Debian's own configuration, the server started by its unit: the
		// generation is dated and nothing has drifted.
		if !strings.Contains(out, "generation: loaded ") || strings.Contains(out, "changed after the serving generation") ||
			strings.Contains(out, "since replaced on disk") || strings.Contains(out, "a renewal not served") {
			t.Errorf("status on the stock host reports drift, or no generation:\n%s", out)
		}
		if out := s.safeRestart(t, h, 0, "reload", s.service); !strings.Contains(out, "answered, 0 refused, 0 reset, 0 failed") {
			t.Errorf("the reload's receipt is missing, or clients saw it:\n%s", out)
		}
		if m := s.model(t, h); m != first {
			t.Errorf("the reload replaced master %d with %d", first, m)
		}
		// Apache's restart overlaps, its new master started in the unit
		// beside the old one; nginx's too, through its own binary upgrade
		// (the new master the old one's child); php-fpm's is the unit's
		// own job.
		want := "systemd's restart job stopped " + s.service + ": master " + strconv.Itoa(first)
		if s.service != "php8.2-fpm" {
			want = "the new master started beside the old one"
		}
		if out := s.safeRestart(t, h, 0, "restart", s.service); !strings.Contains(out, want) || !strings.Contains(out, "receipt: ") {
			t.Errorf("restart does not say %q, or prints no receipt:\n%s", want, out)
		}
		restarted := s.model(t, h)
		if restarted == first {
			t.Errorf("restart kept master %d", first)
		}
		// The PID file the overlap gave the unit is gone once systemd
		// follows the new master.
		if _, err := os.Stat(h.Root() + "/run/systemd/system/" + s.unit + ".d/safe-restart-pidfile.conf"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the unit's PID file drop-in is left: %v", err)
		}
		s.safeRestart(t, h, 0, s.service)
		s.model(t, h)
		s.safeRestart(t, h, 0, "reload", "--full", s.service)
		s.model(t, h)

		s.killMaster9(t, h)
		s.safeRestart(t, h, 0, "start", s.service)
		s.model(t, h)

		s.safeRestart(t, h, 0, "stop", s.service)
		s.stopped(t, h)
		s.safeRestart(t, h, exitRecovered, s.service) // the server was down: a verified start
		s.model(t, h)

		h.MustRun(t, "logrotate", "-f", "-s", "/run/logrotate.status", absExample(t, "logrotate/"+s.logrotate))
		s.model(t, h)

		h.MustRun(t, "systemctl", "status", "--no-pager", s.unit) // exit 0: active
		h.MustRun(t, "systemctl", "reload", s.unit)
		s.model(t, h)
		h.MustRun(t, "systemctl", "stop", s.unit)
		s.stopped(t, h)
	})
}

// TestSystemdCronExample runs the command of examples/cron/safe-restart
// (its jitter shortened) against Apache started by systemd: a verified
// reload, and the unit still follows the master.
func TestSystemdCronExample(t *testing.T) {
	s, inside := apacheOnSystemd(t)
	if !inside {
		return
	}
	h, first := s.started(t)
	f := cronFields(t, "../../examples/cron/safe-restart")
	command := strings.ReplaceAll(strings.Join(f[6:], " "), "--jitter 30m", "--jitter 10ms")
	h.MustRun(t, "/bin/sh", "-c", command)
	log := h.MustRun(t, "cat", "/var/log/safe-restart.log")
	if !strings.Contains(log, "reloaded and verified") {
		t.Fatalf("the cron command did not reload, verified:\n%s", log)
	}
	if m := s.model(t, h); m != first {
		t.Errorf("the reload replaced master %d with %d", first, m)
	}
}

// boot boots systemd with the server's unit left unmasked and this test
// binary installed as /usr/bin/safe-restart. systemdtest.Boot covers
// /run, /tmp, /var/tmp, /var/log and /dev with private tmpfs before systemd
// runs (systemd-tmpfiles would empty this machine's /tmp otherwise), and
// TestBootIsolated checks it.
func (s systemdServer) boot(t *testing.T) *systemdtest.Host {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	o := systemdtest.Options{Units: []string{s.unit}, SafeRestart: self, SafeRestartEnv: []string{mainEnv + "=1"}}
	if s.tmpfiles != "" {
		o.Tmpfiles = []string{s.tmpfiles}
	}
	return systemdtest.Boot(t, o)
}

// apacheOnSystemd is eachServer for a test of Apache alone: it requires
// the binaries (and extra) and runs the test in private namespaces; false
// in the parent process, which has nothing left to do (see
// nstest.InPrivateNamespaces).
func apacheOnSystemd(t *testing.T, extra ...string) (systemdServer, bool) {
	t.Helper()
	return oneOnSystemd(t, systemdServers[0], extra...)
}

// oneOnSystemd is apacheOnSystemd for the server s.
func oneOnSystemd(t *testing.T, s systemdServer, extra ...string) (systemdServer, bool) {
	t.Helper()
	nstest.RequireBinaries(t, append([]string{s.binary, "systemctl", "nsenter", "/lib/systemd/systemd"}, extra...)...)
	return s, nstest.InPrivateNamespaces(t)
}

// eachServer runs body for each of systemdServers in its own subtest, in
// private namespaces (nstest), the binaries it needs (and extra) required.
func eachServer(t *testing.T, extra []string, body func(t *testing.T, s systemdServer)) {
	for _, s := range systemdServers {
		t.Run(s.service, func(t *testing.T) {
			nstest.RequireBinaries(t, append([]string{s.binary, "systemctl", "nsenter", "/lib/systemd/systemd"}, extra...)...)
			if !nstest.InPrivateNamespaces(t) {
				return
			}
			body(t, s)
		})
	}
}

// started boots systemd (see boot) and starts the server's unit, as the
// host's init does at boot; it returns the host and the serving master.
func (s systemdServer) started(t *testing.T) (*systemdtest.Host, int) {
	t.Helper()
	h := s.boot(t)
	h.MustRun(t, "systemctl", "start", s.unit)
	return h, s.model(t, h)
}

// absExample is the absolute path of a file under examples/, which the
// booted systemd's namespaces see too (they share this file system).
func absExample(t *testing.T, rel string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("../../examples", rel))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// safeRestart runs safe-restart with args inside the booted systemd's
// namespaces, outside every unit, and fails the test unless it exits
// with code. It returns stdout and stderr.
func (s systemdServer) safeRestart(t *testing.T, h *systemdtest.Host, code int, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := h.Output(ctx, append([]string{"/usr/bin/safe-restart"}, args...)...)
	got := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		got = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("safe-restart %v: %v", args, err)
	}
	if got != code {
		t.Fatalf("safe-restart %v: exit %d, want %d:\n%s", args, got, code, out)
	}
	t.Logf("safe-restart %v: exit %d:\n%s", args, got, out)
	return out
}

// model checks that systemd's view of the server is the truth and that it
// serves, and returns the master's pid (in the booted namespace). A
// server that was just reloaded by someone else (systemctl reload) may
// not have its new children yet: the check is repeated until it passes or
// 20 s have passed.
func (s systemdServer) model(t *testing.T, h *systemdtest.Host) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		master, err := s.modelErr(t, h)
		if err == nil {
			return master
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // nothing to wait on for another's reload
	}
}

// modelErr is one check of model.
func (s systemdServer) modelErr(t *testing.T, h *systemdtest.Host) (int, error) {
	u := h.Show(t, s.unit, "ActiveState", "SubState", "MainPID", "ControlGroup")
	data, err := os.ReadFile(h.Root() + s.pidFile)
	if err != nil {
		return 0, fmt.Errorf("%s: %v (unit: %v)", s.pidFile, err, u)
	}
	master, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return 0, fmt.Errorf("%s: %v", s.pidFile, err)
	}
	if u["ActiveState"] != "active" || u["MainPID"] != strconv.Itoa(master) {
		return 0, fmt.Errorf("unit %v, but the pidfile names master %d", u, master)
	}
	procs := s.processes(t, h)
	if len(procs) < 2 {
		return 0, fmt.Errorf("server processes %v: want a master and its children", procs)
	}
	if masters := s.masters(h, procs); len(masters) != 1 {
		return 0, fmt.Errorf("masters %v (processes whose parent is no server process): want exactly one", masters)
	}
	for _, p := range procs {
		if cg := h.CGroupOf(p); cg != u["ControlGroup"] && cg != "" {
			return 0, fmt.Errorf("process %d of the server is in cgroup %q, not the unit's %q", p, cg, u["ControlGroup"])
		}
	}
	if err := s.serves(h); err != nil {
		return 0, fmt.Errorf("the server does not serve: %v", err)
	}
	return master, nil
}

// stopped checks that the unit is inactive (not failed), no job is queued
// for it (no restart pending), and no process of the server is left.
func (s systemdServer) stopped(t *testing.T, h *systemdtest.Host) {
	t.Helper()
	u := h.Show(t, s.unit, "ActiveState", "SubState", "Result", "NRestarts")
	if u["ActiveState"] != "inactive" || u["SubState"] != "dead" {
		t.Fatalf("after the stop the unit is %v, want inactive and dead", u)
	}
	if jobs := h.MustRun(t, "systemctl", "list-jobs", "--no-legend", "--no-pager"); strings.Contains(jobs, s.unit) {
		t.Fatalf("after the stop a job is queued for the unit: %s", jobs)
	}
	if procs := s.processes(t, h); len(procs) > 0 {
		t.Fatalf("server processes left after the stop: %v", procs)
	}
	if err := s.serves(h); err == nil {
		t.Fatal("something still serves after the stop")
	}
}

// processes are the live processes of the server's binary in the booted
// namespace.
func (s systemdServer) processes(t *testing.T, h *systemdtest.Host) []int {
	t.Helper()
	entries, err := os.ReadDir(h.ProcRoot())
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join(h.ProcRoot(), e.Name())
		exe, _ := os.Readlink(dir + "/exe")
		stat, _ := os.ReadFile(dir + "/stat")
		if exe == s.binary && !zombie(string(stat)) {
			out = append(out, pid)
		}
	}
	return out
}

// masters are those of procs whose parent is not one of procs.
func (s systemdServer) masters(h *systemdtest.Host, procs []int) []int {
	var out []int
	for _, p := range procs {
		stat, _ := os.ReadFile(filepath.Join(h.ProcRoot(), strconv.Itoa(p), "stat"))
		i := strings.LastIndexByte(string(stat), ')')
		var ppid int
		if i > 0 {
			if f := strings.Fields(string(stat[i+1:])); len(f) > 1 {
				ppid, _ = strconv.Atoi(f[1])
			}
		}
		if !slices.Contains(procs, ppid) {
			out = append(out, p)
		}
	}
	return out
}

// zombie reports whether a /proc/PID/stat line is of a process that has
// exited (state Z or X).
func zombie(stat string) bool {
	i := strings.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' || stat[i+2] == 'X'
}

// killMaster9 SIGKILLs the unit's main process (from inside, by its pid
// there) and waits until systemd has seen it go.
func (s systemdServer) killMaster9(t *testing.T, h *systemdtest.Host) {
	t.Helper()
	pid := h.Show(t, s.unit, "MainPID")["MainPID"]
	h.MustRun(t, "kill", "-KILL", pid)
	deadline := time.Now().Add(30 * time.Second)
	for h.Show(t, s.unit, "MainPID")["MainPID"] == pid {
		if time.Now().After(deadline) {
			t.Fatalf("systemd still shows MainPID %s after kill -9", pid)
		}
		time.Sleep(20 * time.Millisecond) // systemd's reaction has no event this test can wait on
	}
}

// TestSystemdHostApacheEdges covers what only some hosts see, on Debian's
// apache2.service (Restart=on-abort): a master that was started outside
// the unit (by hand, or by an older safe-restart) is reported by status
// and moved into the unit by a restart; a stop whose ladder has to
// SIGKILL the master leaves the unit inactive, where systemd alone would
// count a failure and start Apache again at once; and a start that the
// unit's job cannot complete says why in Apache's words.
func TestSystemdHostApacheEdges(t *testing.T) {
	s, inside := apacheOnSystemd(t)
	if !inside {
		return
	}
	h := s.boot(t)
	h.MustRun(t, "/bin/sh", "-c", ". /etc/apache2/envvars && mkdir -p \"$APACHE_RUN_DIR\" && exec /usr/sbin/apache2 -k start")
	out := s.safeRestart(t, h, 0, "status", s.service)
	if !strings.Contains(out, "unit apache2.service is inactive (dead) while master") {
		t.Errorf("status does not report the master outside the unit:\n%s", out)
	}
	s.safeRestart(t, h, 0, "restart", s.service)
	s.model(t, h)

	s.safeRestart(t, h, 0, "stop", s.service, "--ladder", "KILL:5s:all")
	s.stopped(t, h)
	if n := h.Show(t, s.unit, "NRestarts")["NRestarts"]; n != "0" {
		t.Errorf("systemd restarted the unit %s time(s)", n)
	}
	s.safeRestart(t, h, 0, "start", s.service)
	s.model(t, h)

	// A start that systemd's job cannot complete (the port is taken)
	// quotes Apache's own words, and leaves the unit as systemd judged it.
	h.MustRun(t, "systemctl", "stop", s.unit)
	l, err := net.Listen("tcp", "127.0.0.1:80")
	if err != nil {
		t.Fatal(err)
	}
	out = s.safeRestart(t, h, exitFailed, "start", s.service)
	if !strings.Contains(out, "AH00072") || !strings.Contains(out, "Address already in use") {
		t.Errorf("the failed start does not quote Apache:\n%s", out)
	}
	if u := h.Show(t, s.unit, "ActiveState"); u["ActiveState"] == "active" {
		t.Errorf("unit %v after a start that failed", u)
	}
	l.Close()
	s.safeRestart(t, h, 0, "start", s.service)
	s.model(t, h)
}

// TestSystemdDropIn installs, for each server, the drop-in of `safe-restart
// systemd install` on its Debian unit, and runs `systemctl reload` as other
// programs do: it is a verified safe-restart reload inside the unit that
// keeps the master, and with --full (a reload that must replace the master)
// systemd follows the new master. For Apache, Debian's own logrotate
// configuration (invoke-rc.d apache2 reload) then reloads through it too.
func TestSystemdDropIn(t *testing.T) {
	eachServer(t, []string{"logrotate"}, func(t *testing.T, s systemdServer) {
		h, first := s.started(t)
		s.safeRestart(t, h, 0, "systemd", "install", s.service, "--runtime", "--exec", "/usr/bin/safe-restart")
		dropIn := h.Root() + "/run/systemd/system/" + s.unit + ".d/safe-restart.conf"
		if _, err := os.Stat(dropIn); err != nil {
			t.Fatal(err)
		}
		h.MustRun(t, "systemctl", "reload", s.unit)
		if m := s.model(t, h); m != first {
			t.Errorf("systemctl reload replaced master %d with %d", first, m)
		}
		if j := h.MustRun(t, "journalctl", "--no-pager", "-o", "cat", "-u", s.unit); !strings.Contains(j, "reloaded and verified") {
			t.Fatalf("systemctl reload did not run safe-restart's verified reload; the unit's journal:\n%s", j)
		}

		s.safeRestart(t, h, 0, "systemd", "install", s.service, "--runtime", "--exec", "/usr/bin/safe-restart", "--", "--full")
		h.MustRun(t, "systemctl", "reload", s.unit)
		if m := s.model(t, h); m == first {
			t.Errorf("systemctl reload with --full kept master %d", first)
		}
		if s.service != "apache2" {
			return
		}
		if err := os.Remove(dropIn); err != nil {
			t.Fatal(err)
		}
		s.safeRestart(t, h, 0, "systemd", "install", s.service, "--runtime", "--exec", "/usr/bin/safe-restart")
		if _, err := os.Stat("/usr/sbin/policy-rc.d"); err == nil {
			// This machine's policy-rc.d (a container image's "exit
			// 101") forbids invoke-rc.d; a Debian server has none.
			h.MustRun(t, "mount", "--bind", "/dev/null", "/usr/sbin/policy-rc.d")
		}
		before := strings.Count(h.MustRun(t, "journalctl", "--no-pager", "-o", "cat", "-u", s.unit), "reloaded and verified")
		h.MustRun(t, "logrotate", "-f", "-s", "/run/logrotate.status", "/etc/logrotate.d/apache2")
		s.model(t, h)
		if after := strings.Count(h.MustRun(t, "journalctl", "--no-pager", "-o", "cat", "-u", s.unit), "reloaded and verified"); after != before+1 {
			t.Errorf("Debian's logrotate for apache2 ran %d verified reloads, want 1", after-before)
		}
	})
}

// TestSystemdExampleIsGenerated: examples/systemd/safe-restart.conf is
// what `safe-restart systemd install apache2 --dry-run` prints for
// Debian's apache2.service, so that the example and the command never
// disagree.
func TestSystemdExampleIsGenerated(t *testing.T) {
	s, inside := apacheOnSystemd(t)
	if !inside {
		return
	}
	h := s.boot(t)
	out := s.safeRestart(t, h, 0, "--log-level", "error", "systemd", "install", s.service, "--dry-run", "--exec", installedBinary)
	head, text, _ := strings.Cut(out, "\n")
	if head != "# /etc/systemd/system/apache2.service.d/safe-restart.conf (not written: --dry-run)" {
		t.Errorf("dry run names %q", head)
	}
	example, err := os.ReadFile(systemdDropIn)
	if err != nil {
		t.Fatal(err)
	}
	if text != string(example) {
		t.Fatalf("%s differs from the command's output:\n%s", systemdDropIn, text)
	}
	if _, err := os.Stat(h.Root() + "/etc/systemd/system/apache2.service.d/safe-restart.conf"); err == nil {
		t.Fatal("--dry-run wrote the drop-in")
	}
}

// TestSystemdHostForeignCGroup: a master that a script in another service
// started (cron.service running an older safe-restart, a CI runner's
// service) is in that service's control group, which does not manage it.
// safe-restart must not take that service for the server's unit: status
// reports the master outside apache2.service, and restart replaces it with
// one that apache2.service starts, leaving the other service running.
func TestSystemdHostForeignCGroup(t *testing.T) {
	s, inside := apacheOnSystemd(t, "systemd-run")
	if !inside {
		return
	}
	h := s.boot(t)
	h.MustRun(t, "systemd-run", "--unit=cronlike.service", "--property=KillMode=process", "/bin/sh", "-c",
		`. /etc/apache2/envvars && mkdir -p "$APACHE_RUN_DIR" && /usr/sbin/apache2 -k start && exec sleep infinity`)
	deadline := time.Now().Add(20 * time.Second)
	for len(s.processes(t, h)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the master started from cronlike.service did not come up")
		}
		time.Sleep(20 * time.Millisecond) // nothing to wait on: the master daemonizes inside another unit
	}
	out := s.safeRestart(t, h, 0, "status", s.service)
	if !strings.Contains(out, "systemd: unit apache2.service inactive") || !strings.Contains(out, "unit apache2.service is inactive (dead) while master") {
		t.Errorf("status does not report apache2.service and the master outside it:\n%s", out)
	}
	s.safeRestart(t, h, 0, "restart", s.service)
	s.model(t, h)
	if u := h.Show(t, "cronlike.service", "ActiveState"); u["ActiveState"] != "active" {
		t.Errorf("cronlike.service after the restart: %v", u)
	}
}

// instanceB is a second Apache configuration (Debian's multi-instance
// layout) on 127.0.0.1:8081, with its own pidfile, for
// TestSystemdHostOtherMaster.
const instanceB = `DefaultRuntimeDir /run/b
PidFile /run/b/apache2.pid
Mutex file:/run/b default
ServerRoot /etc/apache2
Include mods-enabled/*.load
Include mods-enabled/*.conf
User www-data
Group www-data
ErrorLog /run/b/error.log
Listen 127.0.0.1:8081
ServerName b.test
DocumentRoot /var/www/html
`

// TestSystemdHostOtherMaster: stopping a master that is not the unit's
// main process (here a second instance, named with --conf, while
// --unit names apache2.service) must not queue the unit's stop job, even
// when the ladder goes to SIGKILL: apache2.service keeps its master and
// serves.
func TestSystemdHostOtherMaster(t *testing.T) {
	s, inside := apacheOnSystemd(t)
	if !inside {
		return
	}
	h, first := s.started(t)
	if err := os.MkdirAll(h.Root()+"/run/b", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.Root()+"/run/b/apache2.conf", []byte(instanceB), 0o644); err != nil {
		t.Fatal(err)
	}
	h.MustRun(t, "/bin/sh", "-c", ". /etc/apache2/envvars && exec /usr/sbin/apache2 -f /run/b/apache2.conf -k start")
	if _, err := net.DialTimeout("tcp", "127.0.0.1:8081", 5*time.Second); err != nil {
		t.Fatalf("instance B does not listen: %v", err)
	}
	s.safeRestart(t, h, 0, "stop", s.service, "--conf", "/run/b/apache2.conf", "--unit", s.unit, "--ladder", "KILL:5s:all")
	if _, err := net.DialTimeout("tcp", "127.0.0.1:8081", 5*time.Second); err == nil {
		t.Error("instance B still listens after its stop")
	}
	if m := s.model(t, h); m != first {
		t.Errorf("apache2.service's master changed from %d to %d", first, m)
	}
}

// TestSystemdHostNginxUpgradeFails: nginx's restart in its unit is its own
// binary upgrade (USR2); when the new binary cannot start (here a
// /usr/sbin/nginx that runs the config tests but fails to start, as a
// half-installed package might), the restart fails, and the old master
// keeps serving as the unit's main process, its pidfile back. With the
// binary whole again, the next restart replaces it; beside an .oldbin file
// it did not make, the restart is the unit's own job.
func TestSystemdHostNginxUpgradeFails(t *testing.T) {
	s, inside := oneOnSystemd(t, systemdServers[1])
	if !inside {
		return
	}
	h, first := s.started(t)
	broken := "#!/bin/sh\n" +
		"case \" $* \" in *\" -t\"*|*\" -T\"*|*\" -V\"*) exec /run/systemdtest/nginx.real \"$@\";; esac\n" +
		"echo 'nginx: [emerg] this nginx cannot start (test)' >&2\nexit 1\n"
	if err := os.WriteFile(h.Root()+"/run/systemdtest/nginx.broken", []byte(broken), 0o755); err != nil {
		t.Fatal(err)
	}
	h.MustRun(t, "cp", "/usr/sbin/nginx", "/run/systemdtest/nginx.real")
	h.MustRun(t, "mount", "--bind", "/run/systemdtest/nginx.broken", "/usr/sbin/nginx")
	out := s.safeRestart(t, h, exitFailed, "restart", s.service)
	if want := "the old master " + strconv.Itoa(first) + " still serves"; !strings.Contains(out, want) {
		t.Errorf("the failed restart does not say %q:\n%s", want, out)
	}
	if m := s.model(t, h); m != first {
		t.Errorf("after the failed upgrade master %d serves, want the old %d", m, first)
	}
	if _, err := os.Stat(h.Root() + s.pidFile + ".oldbin"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the upgrade's .oldbin pidfile is left: %v", err)
	}
	h.MustRun(t, "umount", "/usr/sbin/nginx")
	s.safeRestart(t, h, 0, "restart", s.service)
	second := s.model(t, h)
	if second == first {
		t.Errorf("the restart with the whole binary kept master %d", first)
	}
	// An .oldbin file this run did not make (an upgrade whose old master
	// was killed) is no sign of this run's upgrade: the unit's restart
	// job replaces the master, and the file is left alone.
	oldbin := h.Root() + s.pidFile + ".oldbin"
	if err := os.WriteFile(oldbin, []byte("4242\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := s.safeRestart(t, h, 0, "restart", s.service); !strings.Contains(out, "systemd's restart job stopped") {
		t.Errorf("the restart beside a stray .oldbin was not the unit's restart job:\n%s", out)
	}
	if m := s.model(t, h); m == second {
		t.Errorf("the restart beside a stray .oldbin kept master %d", second)
	}
	if data, err := os.ReadFile(oldbin); err != nil || string(data) != "4242\n" {
		t.Errorf("the stray .oldbin: %q, %v; want it untouched", data, err)
	}
}
