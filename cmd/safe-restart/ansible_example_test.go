package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/safe-restart/safe-restart/internal/apachetest"
	"github.com/safe-restart/safe-restart/internal/nstest"
	"github.com/safe-restart/safe-restart/internal/proctest"
)

// TestAnsibleRollingRestart runs examples/ansible/rolling-restart.yml with
// the real ansible-playbook on two inventory hosts (both localhost, one per
// batch) against a real Apache, and reads the play recap:
//   - a good config: each host reloads the same master, verified (changed);
//   - a bad config: the first host fails on exit 3, the roll stops before
//     the second, and the server is untouched (same master, serving);
//   - a stopped server: the reload's recovery (exit 4) is changed, with
//     the failure ignored, and the server serves again.
func TestAnsibleRollingRestart(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl", "ansible-playbook")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := apachetest.Start(t, apachetest.Config{MPM: "prefork", SysvSem: true})
	master, err := proctest.Identify(srv.MasterPID())
	if err != nil {
		t.Fatal(err)
	}
	pb := newPlaybookRun(t, srv)

	out, code := pb.run(t)
	wantRecap(t, out, code, 0, map[string]string{
		"web1": "ok=3 changed=1 unreachable=0 failed=0 skipped=3 rescued=0 ignored=0",
		"web2": "ok=3 changed=1 unreachable=0 failed=0 skipped=3 rescued=0 ignored=0",
	})
	if n := strings.Count(srv.ErrorLogText(), "AH00171"); n != 2 || !master.Alive() || srv.MasterPID() != master.PID {
		t.Fatalf("%d graceful reloads logged (want 2, one per host), master %v alive %v", n, master, master.Alive())
	}

	good, err := os.ReadFile(srv.ConfPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(srv.ConfPath, append(good, "\nNoSuchDirective on\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code = pb.run(t)
	// web2 never ran: max_fail_percentage 0 stopped the roll after web1.
	wantRecap(t, out, code, 2, map[string]string{
		"web1": "ok=3 changed=0 unreachable=0 failed=1 skipped=1 rescued=0 ignored=0",
	})
	if !strings.Contains(out, "apache2 was left running unchanged") || !master.Alive() || srv.MasterPID() != master.PID {
		t.Fatalf("refused: master %v alive %v\n%s", master, master.Alive(), out)
	}
	if n := strings.Count(srv.ErrorLogText(), "AH00171"); n != 2 {
		t.Errorf("%d graceful reloads logged after the refused roll, want still 2", n)
	}
	if c, _, err := srv.Get("/"); err != nil || c != 200 {
		t.Fatalf("GET after the refused roll: %d, %v", c, err)
	}

	if err := os.WriteFile(srv.ConfPath, good, 0o644); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	out, code = pb.run(t, "-e", "target=web1")
	wantRecap(t, out, code, 0, map[string]string{
		"web1": "ok=4 changed=1 unreachable=0 failed=0 skipped=2 rescued=0 ignored=1",
	})
	if c, _, err := srv.Get("/"); err != nil || c != 200 {
		t.Fatalf("GET after the recovered roll: %d, %v\n%s", c, err, out)
	}
}

// playbookRun runs the rolling-restart playbook against srv.
type playbookRun struct {
	dir, inventory, playbook string
}

// newPlaybookRun writes an inventory of two local hosts whose group vars
// point the playbook at srv, and a safe-restart standing in for the real
// one (this test binary, run as safe-restart).
func newPlaybookRun(t *testing.T, srv *apachetest.Server) *playbookRun {
	t.Helper()
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "safe-restart")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"+mainEnv+"=1 exec '"+self+"' \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	inventory := filepath.Join(dir, "inventory.yml")
	inv := `all:
  hosts:
    web1: {}
    web2: {}
  vars:
    ansible_connection: local
    ansible_python_interpreter: /usr/bin/python3
    safe_restart: "` + bin + `"
    service: apache2
    conf: "` + srv.ConfPath + `"
    state_dir: "` + filepath.Join(dir, "state") + `"
`
	if err := os.WriteFile(inventory, []byte(inv), 0o644); err != nil {
		t.Fatal(err)
	}
	playbook, err := filepath.Abs("../../examples/ansible/rolling-restart.yml")
	if err != nil {
		t.Fatal(err)
	}
	return &playbookRun{dir: dir, inventory: inventory, playbook: playbook}
}

// run runs ansible-playbook, one host per batch, and returns its output
// and exit code.
func (p *playbookRun) run(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command("ansible-playbook", append([]string{"-i", p.inventory, "-e", "batch=1", p.playbook}, args...)...)
	cmd.Dir = p.dir // no ansible.cfg of the caller's
	cmd.Env = append(withoutAnsibleVars(os.Environ()),
		"HOME="+p.dir, "ANSIBLE_LOCAL_TEMP="+filepath.Join(p.dir, "tmp"), "LC_ALL=C.UTF-8",
		"ANSIBLE_NOCOLOR=1", "ANSIBLE_STDOUT_CALLBACK=default")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("ansible-playbook: %v\n%s", err, out)
	}
	return string(out), cmd.ProcessState.ExitCode()
}

// withoutAnsibleVars drops the caller's ANSIBLE_* settings.
func withoutAnsibleVars(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "ANSIBLE_") {
			out = append(out, kv)
		}
	}
	return out
}

var recapLine = regexp.MustCompile(`(?m)^(\S+)\s*:\s*(ok=\d+)\s+(changed=\d+)\s+(unreachable=\d+)\s+(failed=\d+)\s+(skipped=\d+)\s+(rescued=\d+)\s+(ignored=\d+)`)

// wantRecap fails the test unless ansible-playbook exited wantCode and its
// PLAY RECAP lists exactly the hosts of want, each with its counts.
func wantRecap(t *testing.T, out string, code, wantCode int, want map[string]string) {
	t.Helper()
	_, recap, ok := strings.Cut(out, "PLAY RECAP")
	got := map[string]string{}
	for _, m := range recapLine.FindAllStringSubmatch(recap, -1) {
		got[m[1]] = strings.Join(m[2:], " ")
	}
	if !ok || code != wantCode || len(got) != len(want) {
		t.Fatalf("exit %d (want %d), recap %v (want %v)\n%s", code, wantCode, got, want, out)
	}
	for host, counts := range want {
		if got[host] != counts {
			t.Fatalf("%s: %q, want %q\n%s", host, got[host], counts, out)
		}
	}
}
