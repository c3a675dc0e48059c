package main

import (
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/safe-restart/safe-restart/internal/nginxtest"
	"github.com/safe-restart/safe-restart/internal/nstest"
	"github.com/safe-restart/safe-restart/supervise"
)

// TestRestartHooks: on a real nginx, a restart that keeps its sockets
// (the handoff) runs no hook; one that cannot (--no-handoff --no-overlap)
// runs --pre-stop while the old master still serves and --post-start once
// the new one is verified, each with its output in the report, the receipt
// and on the console; a failing --pre-stop refuses the restart (exit 3) with
// the old master untouched.
func TestRestartHooks(t *testing.T) {
	nstest.RequireBinaries(t, "nginx")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := nginxtest.Start(t, nginxtest.Options{})
	dir := t.TempDir()
	log := filepath.Join(dir, "hooks.log")
	hook := func(phase string) string {
		return "echo " + phase + " $SAFE_RESTART_SERVICE $SAFE_RESTART_PHASE $(cat " + srv.PidFile + ") >> " + log + "; echo said " + phase
	}
	args := []string{"restart", "nginx", "--conf", srv.ConfPath, "--state-dir", t.TempDir(), "--pre-stop", hook("pre"), "--post-start", hook("post")}
	restart := func(extra ...string) (int, supervise.RestartReport, string) {
		t.Helper()
		code, out, errOut := runCLI(t, append(append(args, extra...), "--json")...)
		var rep supervise.RestartReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("restart %v: exit %d, %v\n%s\n%s", extra, code, err, out, errOut)
		}
		return code, rep, errOut
	}

	if code, rep, errOut := restart(); code != exitOK || len(rep.Hooks) != 0 || readFile(t, log) != "" {
		t.Fatalf("a restart on held sockets: exit %d, hooks %+v, log %q\n%s", code, rep.Hooks, readFile(t, log), errOut)
	}
	old := srv.MasterPID()
	code, rep, errOut := restart("--no-handoff", "--no-overlap")
	if code != exitOK || len(rep.Hooks) != 2 || rep.Receipt == nil || len(rep.Receipt.Hooks) != 2 {
		t.Fatalf("a restart with a gap: exit %d, %+v\n%s", code, rep, errOut)
	}
	now := srv.MasterPID()
	want := "pre nginx pre-stop " + strconv.Itoa(old) + "\npost nginx post-start " + strconv.Itoa(now) + "\n"
	if got := readFile(t, log); got != want || now == old {
		t.Fatalf("hooks saw %q, want %q", got, want)
	}
	if h := rep.Hooks[0]; h.Phase != "pre-stop" || h.Output != "said pre\n" || h.Error != "" {
		t.Errorf("pre-stop run: %+v", h)
	}
	code, out, errOut := runCLI(t, append(args, "--no-handoff", "--no-overlap")...)
	if code != exitOK || !strings.Contains(out, "hook pre-stop (") || !strings.Contains(out, "  | said post") {
		t.Fatalf("console: exit %d\n%s\n%s", code, out, errOut)
	}

	// No master running: nothing to take out of the balancer.
	logged := readFile(t, log)
	if code, out, errOut := runCLI(t, "stop", "nginx", "--conf", srv.ConfPath, "--state-dir", args[5]); code != exitOK {
		t.Fatalf("stop: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, rep, errOut := restart("--no-handoff", "--no-overlap"); code != exitOK || len(rep.Hooks) != 0 || readFile(t, log) != logged {
		t.Fatalf("a restart of a stopped server: exit %d, hooks %+v\n%s", code, rep.Hooks, errOut)
	}

	before := srv.MasterPID()
	bad := append(append([]string{}, args...), "--no-handoff", "--no-overlap", "--pre-stop", "echo the balancer said no; exit 7")
	code, out, errOut = runCLI(t, bad...)
	if code != exitRefused || srv.MasterPID() != before || !strings.Contains(errOut, "the balancer said no") {
		t.Fatalf("failing pre-stop: exit %d, master %d (was %d)\n%s\n%s", code, srv.MasterPID(), before, out, errOut)
	}
}
