package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/safe-restart/safe-restart/internal/daemontest"
	"github.com/safe-restart/safe-restart/internal/nginxtest"
	"github.com/safe-restart/safe-restart/internal/nstest"
	"github.com/safe-restart/safe-restart/internal/proctest"
	"github.com/safe-restart/safe-restart/internal/semtest"
	"github.com/safe-restart/safe-restart/internal/srvtest"
	"github.com/safe-restart/safe-restart/supervise"
)

// testDaemon is daemontest's daemon (this test binary in a helper mode)
// described by a service file, as an operator would describe any daemon.
type testDaemon struct {
	dir, svc, conf, pidFile, log, addr string
}

// daemonService writes the service file of a test daemon (startFlags are
// added to its start command) and its first configuration.
func daemonService(t *testing.T, startFlags ...string) *testDaemon {
	t.Helper()
	dir := t.TempDir()
	exe := proctest.CopySelf(t, dir) // the daemon's master must not run its parent's binary (this test's)
	d := &testDaemon{dir: dir, svc: filepath.Join(dir, "testd.toml"), conf: filepath.Join(dir, "testd.conf"),
		pidFile: filepath.Join(dir, "testd.pid"), log: filepath.Join(dir, "testd.log"), addr: srvtest.FreeAddr(t)}
	start := []string{"/usr/bin/env", daemontest.Env + "=start", exe, "-conf", "{conf}", "-pidfile", d.pidFile, "-log", d.log}
	check := []string{"/usr/bin/env", daemontest.Env + "=check", exe, "-conf", "{conf}"}
	text := fmt.Sprintf(`# the test daemon, described as any daemon would be
name = "testd"
binary = %q
start = %s
conf = %q
pidfile = %q
config_test = %s
error_log = %q

[signals]
reload = "HUP"

[stop]
graceful = "QUIT"
ladder = "TERM:10s,KILL:5s:all"

[health]
http = true

[log]
fatal = ['FATAL']
reloaded = '\[pid (?P<pid>\d+)\] reloaded generation'
rejected = 'refused the new configuration'
`, exe, tomlList(append(start, startFlags...)), d.conf, d.pidFile, tomlList(check), d.log)
	if err := os.WriteFile(d.svc, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	d.writeConf(t, "generation 1")
	return d
}

// tomlList writes argv as a TOML array of basic strings.
func tomlList(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = strconv.Quote(a)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// writeConf writes the daemon's configuration: its listen line and lines.
func (d *testDaemon) writeConf(t *testing.T, lines ...string) {
	t.Helper()
	text := "listen " + d.addr + "\n" + strings.Join(lines, "\n") + "\n"
	if err := os.WriteFile(d.conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// get returns the body the daemon serves.
func (d *testDaemon) get() (string, error) {
	_, body, err := srvtest.Get(d.addr, "/")
	return strings.TrimSpace(body), err
}

// wantServes fails the test unless the daemon serves generation gen.
func (d *testDaemon) wantServes(t *testing.T, gen int) {
	t.Helper()
	if body, err := d.get(); err != nil || body != fmt.Sprintf("generation %d", gen) {
		t.Fatalf("GET: %q, %v; want generation %d", body, err, gen)
	}
}

// master identifies the process the pidfile names.
func (d *testDaemon) master(t *testing.T) proctest.Proc {
	t.Helper()
	pid, err := srvtest.ReadPIDFile(d.pidFile)
	if err != nil {
		t.Fatal(err)
	}
	p, err := proctest.Identify(pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Kill(time.Now().Add(5 * time.Second)) })
	return p
}

// cli runs one command on the daemon's service file and checks its exit
// code; it returns stdout and stderr.
func (d *testDaemon) cli(t *testing.T, wantCode int, args ...string) (string, string) {
	t.Helper()
	state := filepath.Join(d.dir, "state")
	code, out, errOut := runCLI(t, append(args, "--state-dir", state)...)
	if code != wantCode {
		t.Fatalf("%v: exit %d, want %d\nstdout: %s\nstderr: %s\ndaemon log:\n%s", args, code, wantCode, out, errOut, readFile(t, d.log))
	}
	first, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	t.Logf("%v: exit %d: %s", args, code, first)
	return out, errOut
}

// TestServiceFileDaemon drives a real daemon through its service file
// alone: start, status, a reload proven by its log line, a config refused
// by its config test (exit 3), a reload the daemon rejects (exit 1, the old
// generation serves), restart, a reload that kills it (exit 4, recovered),
// a reload of a stopped daemon (exit 4), and stop.
func TestServiceFileDaemon(t *testing.T) {
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	d := daemonService(t)
	out, _ := d.cli(t, exitOK, "start", d.svc)
	if !strings.Contains(out, "started testd: master") {
		t.Errorf("start said %q", out)
	}
	d.wantServes(t, 1)
	m1 := d.master(t)

	// By name, in --service-dir.
	out, _ = d.cli(t, exitOK, "status", "testd", "--service-dir", d.dir)
	if !strings.Contains(out, fmt.Sprintf("testd: running, master %d", m1.PID)) {
		t.Errorf("status said %q", out)
	}

	// The daemon takes 300ms to load the new generation: the reload is
	// verified only once it logged "reloaded generation", so it serves at once.
	d.writeConf(t, "generation 2", "reload_delay 300ms")
	out, _ = d.cli(t, exitOK, "reload", d.svc)
	if !strings.Contains(out, fmt.Sprintf("reloaded testd: master %d (SIGHUP)", m1.PID)) {
		t.Errorf("reload said %q", out)
	}
	d.wantServes(t, 2)

	d.writeConf(t, "generation 3", "invalid")
	_, errOut := d.cli(t, exitRefused, "reload", d.svc)
	if !strings.Contains(errOut, "config test") {
		t.Errorf("refused reload said %q", errOut)
	}
	d.writeConf(t, "generation 3", "reject")
	_, errOut = d.cli(t, exitFailed, "reload", d.svc)
	if !strings.Contains(errOut, "rejected the new configuration") {
		t.Errorf("rejected reload said %q", errOut)
	}
	if !m1.Alive() {
		t.Fatal("a refused or rejected reload stopped the master")
	}
	d.wantServes(t, 2)

	d.writeConf(t, "generation 3")
	d.cli(t, exitOK, "restart", d.svc)
	m2 := d.master(t)
	if m1.Alive() || m2 == m1 {
		t.Fatalf("restart left master %v alive or kept it (new %v)", m1, m2)
	}
	d.wantServes(t, 3)

	d.writeConf(t, "generation 4", "crash")
	out, _ = d.cli(t, exitRecovered, d.svc)
	m3 := d.master(t)
	if !strings.Contains(out, "testd recovered") || m2.Alive() || m3 == m2 {
		t.Fatalf("crashing reload: said %q; old master alive %v, new %v", out, m2.Alive(), m3)
	}
	d.wantServes(t, 4)

	out, _ = d.cli(t, exitOK, "stop", d.svc)
	if !strings.Contains(out, fmt.Sprintf("stopped testd: master %d", m3.PID)) || m3.Alive() {
		t.Fatalf("stop said %q; master alive %v", out, m3.Alive())
	}
	if _, err := os.Stat(d.pidFile); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("pidfile after a graceful stop: %v", err)
	}
	d.writeConf(t, "generation 5")
	out, _ = d.cli(t, exitRecovered, "reload", d.svc)
	if !strings.Contains(out, "the server was not running") {
		t.Errorf("reload of a stopped daemon said %q", out)
	}
	d.wantServes(t, 5)
}

// TestServiceFileLadderEscalates: a daemon that ignores the graceful QUIT
// is stopped by the file's next step, TERM, once QUIT is verified to have
// left it alive.
func TestServiceFileLadderEscalates(t *testing.T) {
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	d := daemonService(t, "-ignore-quit")
	d.cli(t, exitOK, "start", d.svc)
	m := d.master(t)
	out, _ := d.cli(t, exitOK, "stop", d.svc, "--graceful-timeout", "500ms", "--json")
	var rep supervise.StopReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("stop --json: %v\n%s", err, out)
	}
	if len(rep.Steps) != 2 || rep.Steps[0].Step.Signal != syscall.SIGQUIT || len(rep.Steps[0].Survivors) != 1 || rep.Steps[0].Survivors[0] != m.PID ||
		rep.Steps[1].Step.Signal != syscall.SIGTERM || len(rep.Steps[1].Survivors) != 0 {
		t.Fatalf("steps %+v; want QUIT leaving master %d, then TERM", rep.Steps, m.PID)
	}
	if m.Alive() || !strings.Contains(readFile(t, d.log), "ignoring QUIT") {
		t.Fatalf("master alive %v; log:\n%s", m.Alive(), readFile(t, d.log))
	}
}

// TestServiceFileErrors: a bad service file is a configuration error (exit
// 2) that names the file, the key and the problem; nothing is run.
func TestServiceFileErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	marker := filepath.Join(dir, "ran")
	text := fmt.Sprintf("binary = \"/bin/sh\"\nstart = [\"/bin/sh\", \"-c\", \"touch %s\"]\npidfile = \"/run/bad.pid\"\n[stop]\nladder = \"TERM:forever\"\n", marker)
	if err := os.WriteFile(bad, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"start", bad}, {"stop", bad}, {"restart", bad}, {"reload", bad}, {"status", bad}, {bad},
		{"ipc", "ls", "--service", bad},
	} {
		code, _, errOut := runCLI(t, append(args, "--state-dir", dir)...)
		if code != exitUsage || !strings.Contains(errOut, "bad service file "+bad+": stop.ladder") {
			t.Errorf("%v: exit %d, %s; want exit %d naming the file and stop.ladder", args, code, errOut, exitUsage)
		}
	}
	code, _, errOut := runCLI(t, "start", "nosuch", "--service-dir", dir, "--state-dir", dir)
	if code != exitUsage || !strings.Contains(errOut, filepath.Join(dir, "nosuch.toml")) {
		t.Errorf("unknown name: exit %d, %s; want exit %d naming the file looked for", code, errOut, exitUsage)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("a command ran the start of a bad service file")
	}
}

// nginxServiceFile describes Debian's nginx as an operator would, with no
// built-in profile: the service-file path driving a real server.
const nginxServiceFile = `name = "nginx-file"
binary = "/usr/sbin/nginx"
start = ["/usr/sbin/nginx", "-c", "{conf}"]
config_test = ["/usr/sbin/nginx", "-t", "-q", "-c", "{conf}"]
conf = %q
pidfile = %q
error_log = %q
user = "www-data"
workers = true

[signals]
reload = "HUP"

[stop]
graceful = "QUIT"
ladder = "TERM:10s,KILL:5s:all"

[health]
http = true

[log]
fatal = ['\[emerg\]']
reloaded = '\[notice\] (?P<pid>\d+)#\d+: start worker processes'
`

// TestServiceFileNginx: the real nginx (nginxtest's), described by a
// service file only, is stopped, started, reloaded (same master, new
// workers) and stopped through that file.
func TestServiceFileNginx(t *testing.T) {
	nstest.RequireBinaries(t, "nginx")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := nginxtest.Start(t, nginxtest.Options{ErrorLogLevel: "notice"})
	d := &testDaemon{dir: srv.Dir, svc: filepath.Join(srv.Dir, "nginx-file.toml"), conf: srv.ConfPath, pidFile: srv.PidFile, log: srv.ErrorLog}
	if err := os.WriteFile(d.svc, []byte(fmt.Sprintf(nginxServiceFile, srv.ConfPath, srv.PidFile, srv.ErrorLog)), 0o644); err != nil {
		t.Fatal(err)
	}
	first := d.master(t)
	d.cli(t, exitOK, "stop", d.svc)
	if first.Alive() {
		t.Fatal("the master nginxtest started is alive after stop")
	}
	d.cli(t, exitOK, "start", d.svc)
	m := d.master(t)
	if code, body, err := srv.Get("/"); err != nil || code != 200 || body != nginxtest.IndexBody {
		t.Fatalf("GET after start: %d %q %v", code, body, err)
	}
	oldWorkers := proctest.ChildrenOf(m.PID)

	out, _ := d.cli(t, exitOK, "reload", d.svc, "--json")
	var rep supervise.ReloadReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("reload --json: %v\n%s", err, out)
	}
	// The reload is verified once a worker of the new generation serves;
	// the master may still be forking the others.
	if rep.Signal != "SIGHUP" || rep.Master == nil || rep.Master.PID != m.PID || len(rep.NewChildren) == 0 || len(rep.NewChildren) > srv.Options.Workers || !m.Alive() {
		t.Fatalf("reload: %+v; want HUP, master %d kept, 1 to %d new workers", rep, m.PID, srv.Options.Workers)
	}
	for _, w := range oldWorkers {
		if slices.Contains(rep.NewChildren, w.PID) {
			t.Errorf("first-generation worker %d counted as new: %v", w.PID, rep.NewChildren)
		}
	}
	if !strings.Contains(srv.ErrorLogText(), fmt.Sprintf("%d#%d: signal 1 (SIGHUP) received", m.PID, m.PID)) {
		t.Errorf("error log has no HUP for master %d:\n%s", m.PID, srv.ErrorLogText())
	}

	d.cli(t, exitOK, "stop", d.svc)
	if m.Alive() || len(srv.Processes()) != 0 {
		t.Fatalf("after stop: master alive %v, nginx processes %v", m.Alive(), srv.Processes())
	}
}

// TestServiceFileIPC: a service file's [ipc] table is the signature that
// `ipc reap --service FILE` judges by: the dead sets it describes are
// removed; sets with another key or another size are foreign and kept.
func TestServiceFileIPC(t *testing.T) {
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	dir := t.TempDir()
	svc := filepath.Join(dir, "semapp.toml")
	text := fmt.Sprintf(`binary = "/usr/bin/sleep"
start = ["/usr/bin/sleep", "0"]
pidfile = %q
[ipc]
owner = "33"
creator = "root"
key = 0
nsems = 1
mode = "0600"
kinds = ["sem"]
`, filepath.Join(dir, "semapp.pid"))
	if err := os.WriteFile(svc, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	dead := semtest.DeadSets(t, "2 33 1")
	otherKey := semtest.DeadSets(t, "1 33 1 4660 1")[0]
	otherSize := semtest.DeadSets(t, "1 33 1 0 2")[0]
	code, out, errOut := runCLI(t, "ipc", "reap", "--service", svc, "--state-dir", dir, "--yes")
	if code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	left := semIDs(t)
	if len(left) != 2 || !left[otherKey] || !left[otherSize] {
		t.Fatalf("sets left %v, want only %d and %d (not %v)\n%s\n%s", left, otherKey, otherSize, dead, out, errOut)
	}
	if !strings.Contains(errOut, `"signature":"semapp [sem]: key 0`) {
		t.Errorf("the log does not show the file's signature:\n%s", errOut)
	}
}
