package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/safe-restart/safe-restart/internal/apachetest"
	"github.com/safe-restart/safe-restart/internal/nstest"
	"github.com/safe-restart/safe-restart/internal/proctest"
	"github.com/safe-restart/safe-restart/supervise/server"
)

const (
	systemdDropIn    = "../../examples/systemd/safe-restart.conf"
	installedBinary  = "/usr/bin/safe-restart"
	debianApacheUnit = "/lib/systemd/system/apache2.service"
)

// unitSettings reads a systemd unit file (drop-in) into its [Service]
// settings, each key with its values in order (an empty value resets the
// list, as ExecReload= does). It handles what the example uses: sections,
// comments and key=value lines; a continuation line fails the test.
func unitSettings(t *testing.T, path string) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case strings.HasSuffix(line, `\`):
			t.Fatalf("%s:%d: continuation lines are not handled here", path, n)
		case line[0] == '[':
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section != "Service" {
				t.Fatalf("%s:%d: %q is not a [Service] setting", path, n, line)
			}
			k = strings.TrimSpace(k)
			out[k] = append(out[k], strings.TrimSpace(v))
		}
	}
	return out
}

// execReloadArgv returns the drop-in's ExecReload= command line, split into
// words, after checking that it first resets the unit's own ExecReload=.
func execReloadArgv(t *testing.T, set map[string][]string) []string {
	t.Helper()
	r := set["ExecReload"]
	if len(r) != 2 || r[0] != "" {
		t.Fatalf("ExecReload= %q: want an empty line (dropping apachectl graceful) and one command", r)
	}
	// A "-" prefix would hide failures from systemctl reload; quotes and
	// %-specifiers would need systemd's own splitting.
	if strings.ContainsAny(r[1][:1], "-@:+!") || strings.ContainsAny(r[1], `"'%\`) {
		t.Fatalf("ExecReload=%s: no prefix, quote or specifier expected", r[1])
	}
	argv := strings.Fields(r[1])
	if argv[0] != installedBinary || len(argv) < 3 || argv[1] != "reload" || argv[2] != "apache2" {
		t.Fatalf("ExecReload=%s: want %s reload apache2 …", r[1], installedBinary)
	}
	return argv
}

// systemdDuration parses the systemd time spans the example uses ("90s",
// "3min").
func systemdDuration(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(strings.Replace(s, "min", "m", 1))
	if err != nil {
		t.Fatalf("time span %q: %v", s, err)
	}
	return d
}

// TestSystemdDropInExample checks examples/systemd/safe-restart.conf
// against Debian's apache2 and runs its ExecReload= command (this test
// binary standing in for safe-restart, pointed at a test server) as systemd
// would. A verified reload keeps the master and exits 0; a recovery exits
// with a code SuccessExitStatus= accepts, and PIDFile= (here the test
// server's pidfile) then names the new, serving master, which is how
// systemd follows it.
func TestSystemdDropInExample(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	set := unitSettings(t, systemdDropIn)
	argv := execReloadArgv(t, set)
	checkDropInPIDFile(t, set)
	checkDropInTimeout(t, set, argv)
	success := append([]string{"0"}, strings.Fields(strings.Join(set["SuccessExitStatus"], " "))...)
	if !slices.Contains(success, strconv.Itoa(exitRecovered)) {
		t.Fatalf("SuccessExitStatus=%q lacks %d: after a recovery systemd would not read PIDFile= again", set["SuccessExitStatus"], exitRecovered)
	}

	srv := apachetest.Start(t, apachetest.Config{MPM: "prefork", SysvSem: true})
	master := srv.Master()
	args := append(argv[1:], "--conf", srv.ConfPath, "--state-dir", t.TempDir())
	code, out, errOut := runCLI(t, args...)
	if code != exitOK || !strings.Contains(out, "reloaded apache2") || srv.MasterPID() != master.PID || !master.Alive() {
		t.Fatalf("ExecReload: exit %d (master %d alive %v, pidfile %d)\n%s\n%s", code, master.PID, master.Alive(), srv.MasterPID(), out, errOut)
	}

	srv.KillMaster9() // the master died; its children still hold the ports
	// The server was not running: the reload must start it again,
	// verified, and say so (exit 4), which SuccessExitStatus= accepts.
	code, out, errOut = runCLI(t, args...)
	if code != exitRecovered {
		t.Fatalf("ExecReload after the master died: exit %d, want %d (recovered)\n%s\n%s", code, exitRecovered, out, errOut)
	}
	t.Logf("after the master died: exit %d, %s", code, out)
	// What systemd does next: read PIDFile= and follow that process.
	next, err := proctest.Identify(srv.MasterPID())
	if err != nil || next.PID == master.PID || !next.Alive() {
		t.Fatalf("the pidfile does not name a new live master (%v, %v)\n%s", next, err, out)
	}
	if c, _, err := srv.Get("/"); err != nil || c != 200 {
		t.Fatalf("GET after the recovery: %d, %v", c, err)
	}
}

// checkDropInPIDFile: PIDFile= is where Debian's Apache writes its pid
// (APACHE_PID_FILE in /etc/apache2/envvars; /var/run is /run).
func checkDropInPIDFile(t *testing.T, set map[string][]string) {
	t.Helper()
	out, err := exec.Command("/bin/sh", "-c", `. /etc/apache2/envvars && printf %s "$APACHE_PID_FILE"`).Output()
	if err != nil {
		t.Fatalf("source /etc/apache2/envvars: %v", err)
	}
	want := strings.Replace(string(out), "/var/run/", "/run/", 1)
	if got := set["PIDFile"]; len(got) != 1 || got[0] != want {
		t.Fatalf("PIDFile=%q, Debian's Apache writes %s", got, want)
	}
}

// checkDropInTimeout: systemd kills an ExecReload= that outlasts
// TimeoutStartSec=, so it must exceed safe-restart's longest reload: the
// lock wait, the reload's verification, the whole stop ladder and the
// start's verification (--timeout each).
func checkDropInTimeout(t *testing.T, set map[string][]string, argv []string) {
	t.Helper()
	lock := 2 * time.Minute // --lock-timeout's default
	if i := slices.Index(argv, "--lock-timeout"); i > 0 && i+1 < len(argv) {
		lock = systemdDuration(t, argv[i+1])
	}
	longest := lock + 2*20*time.Second // --timeout's default, twice
	for _, s := range server.ApacheLadder(server.DefaultGracefulWait) {
		longest += s.Wait
	}
	ts := set["TimeoutStartSec"]
	if len(ts) != 1 || systemdDuration(t, ts[0]) <= longest {
		t.Fatalf("TimeoutStartSec=%q: a reload can take %v", ts, longest)
	}
}

// TestSystemdDropInVerifies runs `systemd-analyze verify` on Debian's
// apache2.service with the example drop-in (its safe-restart path pointed
// at this test binary, which exists): no error, and no complaint about a
// line of the drop-in (unknown key, unparsable value), which verify only
// logs.
func TestSystemdDropInVerifies(t *testing.T) {
	nstest.RequireBinaries(t, "systemd-analyze")
	analyze, err := nstest.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal(err)
	}
	// Debian's apache2 package installs it; the Makefile installs that.
	unit, err := os.ReadFile(debianApacheUnit)
	if err != nil {
		t.Fatalf("no Debian apache2 unit: %v", err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dropIn, err := os.ReadFile(systemdDropIn)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "apache2.service.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"apache2.service":                     string(unit),
		"apache2.service.d/safe-restart.conf": strings.ReplaceAll(string(dropIn), installedBinary, self),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(analyze, "verify", "--man=no", filepath.Join(dir, "apache2.service"))
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_LEVEL=debug")
	out, err := cmd.CombinedOutput()
	complaints := linesWith(string(out), "safe-restart.conf:")
	if err != nil || len(complaints) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, strings.Join(append(complaints, lastLinesOf(string(out), 20)...), "\n"))
	}
	if !strings.Contains(string(out), "PIDFile: /run/apache2/apache2.pid") {
		t.Fatalf("systemd did not take PIDFile= from the drop-in:\n%s", out)
	}
}

func linesWith(text, s string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

func lastLinesOf(text string, n int) []string {
	l := strings.Split(strings.TrimRight(text, "\n"), "\n")
	return l[max(0, len(l)-n):]
}
