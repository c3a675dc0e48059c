package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/safe-restart/safe-restart/internal/apachetest"
	"github.com/safe-restart/safe-restart/internal/nstest"
	"github.com/safe-restart/safe-restart/internal/proctest"
)

// TestLogrotateExample runs examples/logrotate/apache2, pointed at a test
// server, with the real logrotate -f: the log is rotated and the postrotate
// safe-restart reloads the same master, verified.
func TestLogrotateExample(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl", "logrotate")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := apachetest.Start(t, apachetest.Config{MPM: "prefork", SysvSem: true})
	master, err := proctest.Identify(srv.MasterPID())
	if err != nil {
		t.Fatal(err)
	}
	log := runLogrotateExample(t, "apache2", srv.ErrorLog, "/usr/bin/safe-restart apache2", "apache2 --conf "+srv.ConfPath,
		"create 640 root adm", "create 640 root root")
	if !strings.Contains(log, "reloaded and verified") || !strings.Contains(log, "rotated logs released") ||
		!master.Alive() || srv.MasterPID() != master.PID {
		t.Fatalf("postrotate did not reload the same master, verified:\n%s", log)
	}
	if c, _, err := srv.Get("/"); err != nil || c != 200 {
		t.Fatalf("GET after logrotate: %d, %v", c, err)
	}
}

// runLogrotateExample runs examples/logrotate/NAME with the real logrotate
// -f, its log pattern replaced by errorLog, its command (cmd, e.g.
// "/usr/bin/safe-restart apache2") by this test binary standing in for safe-restart
// with args and a state dir, its own log by a temporary file, and any more
// old, new pairs. It fails the test unless logrotate succeeds and rotated
// errorLog to errorLog.1, and returns what safe-restart logged.
func runLogrotateExample(t *testing.T, name, errorLog, cmd, args string, more ...string) string {
	t.Helper()
	example, err := os.ReadFile("../../examples/logrotate/" + name)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.NewReplacer(append([]string{
		"/var/log/" + name + "/*.log", errorLog,
		cmd, self + " " + args + " --state-dir " + filepath.Join(dir, "state"),
		"/var/log/safe-restart.log", filepath.Join(dir, "safe-restart.log"),
	}, more...)...).Replace(string(example))
	confPath := filepath.Join(dir, "logrotate.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	run := exec.Command("logrotate", "-f", "-s", filepath.Join(dir, "status"), confPath)
	run.Env = append(os.Environ(), mainEnv+"=1")
	out, err := run.CombinedOutput()
	log, _ := os.ReadFile(filepath.Join(dir, "safe-restart.log"))
	if err != nil {
		t.Fatalf("logrotate: %v\n%s\nsafe-restart:\n%s", err, out, log)
	}
	if _, err := os.Stat(errorLog + ".1"); err != nil {
		t.Fatalf("the log was not rotated: %v", err)
	}
	return string(log)
}

// TestCronExample runs the command of examples/cron/safe-restart (its
// jitter shortened) against a test server: a verified reload, exit 0.
func TestCronExample(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := apachetest.Start(t, apachetest.Config{MPM: "prefork", SysvSem: true})
	f := cronFields(t, "../../examples/cron/safe-restart")
	line := strings.Join(f, " ")
	if f[5] != "root" {
		t.Fatalf("not a cron.d line run as root: %q", line)
	}
	// A fleet's nightly reloads must not all land in the same second.
	if !strings.Contains(line, " --jitter 30m ") {
		t.Fatalf("the cron line has no --jitter 30m: %q", line)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	command := strings.NewReplacer(
		"/usr/bin/safe-restart apache2", self+" apache2 --conf "+srv.ConfPath+" --state-dir "+filepath.Join(dir, "state"),
		"--jitter 30m", "--jitter 10ms",
		"/var/log/safe-restart.log", filepath.Join(dir, "safe-restart.log"),
	).Replace(strings.Join(f[6:], " "))
	cmd := exec.Command("/bin/sh", "-c", command)
	cmd.Env = append(os.Environ(), mainEnv+"=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "safe-restart.log"))
		t.Fatalf("%s: %v\n%s\n%s", command, err, out, log)
	}
	if log, _ := os.ReadFile(filepath.Join(dir, "safe-restart.log")); !strings.Contains(string(log), "reloaded and verified") {
		t.Fatalf("the cron command did not reload, verified:\n%s", log)
	}
}

// TestDeployExample runs examples/deploy/deploy.sh against a test server:
// it restarts, verified, and a bad configuration stops the deploy with the
// server still serving.
func TestDeployExample(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := apachetest.Start(t, apachetest.Config{MPM: "prefork", SysvSem: true})
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	deploy := func() (string, error) {
		cmd := exec.Command("../../examples/deploy/deploy.sh", "--conf", srv.ConfPath, "--state-dir", filepath.Join(t.TempDir(), "state"),
			"--graceful-timeout", "0")
		cmd.Env = append(os.Environ(), mainEnv+"=1", "SAFE_RESTART="+self)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := deploy(); err != nil || !strings.Contains(out, "restarted and verified") {
		t.Fatalf("deploy: %v\n%s", err, out)
	}
	master, err := proctest.Identify(srv.MasterPID())
	if err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(srv.ConfPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(srv.ConfPath, append(good, "\nNoSuchDirective on\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := deploy(); err == nil || !strings.Contains(out, "refused or failed") || !master.Alive() {
		t.Fatalf("deploy with a bad config: %v (master alive %v)\n%s", err, master.Alive(), out)
	}
}
