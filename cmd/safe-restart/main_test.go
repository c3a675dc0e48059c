package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/safe-restart/safe-restart/internal/apachetest"
	"github.com/safe-restart/safe-restart/internal/daemontest"
	"github.com/safe-restart/safe-restart/internal/nstest"
	"github.com/safe-restart/safe-restart/internal/semtest"
	"github.com/safe-restart/safe-restart/ipcguard"
)

// mainEnv makes the test binary run as safe-restart itself, so that a test
// can SIGKILL it in the middle of an operation.
const mainEnv = "SAFE_RESTART_TEST_MAIN"

func TestMain(m *testing.M) {
	semtest.RunHelper()
	daemontest.Run()
	if os.Getenv(mainEnv) != "" {
		main() // the binary itself, as an operator runs it
	}
	os.Exit(m.Run())
}

// runCLI runs one command line and returns its exit code, stdout and stderr.
// It refuses (fails the test) a command that keeps state but is given no
// --state-dir: its default, /run/safe-restart, is the host's, inside
// nstest's namespaces too (they share the host's file system).
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	requireStateDir(t, args)
	var out, errb bytes.Buffer
	code := execute(append([]string{"--log-format", "json"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// requireStateDir fails the test if the command args select keeps state
// (see keepsState) and args do not set --state-dir.
func requireStateDir(t *testing.T, args []string) {
	t.Helper()
	if !keepsState(args) {
		return
	}
	for _, a := range args {
		if a == "--state-dir" || strings.HasPrefix(a, "--state-dir=") {
			return
		}
	}
	t.Fatalf("runCLI %q without --state-dir: it would use the host's /run/safe-restart; pass --state-dir t.TempDir()", args)
}

// keepsState reports whether the command args select has a --state-dir
// flag. A command line cobra cannot resolve to a command runs nothing.
func keepsState(args []string) bool {
	cmd, _, err := newRootCmd(&deps{stdout: io.Discard, stderr: io.Discard, logs: io.Discard}).Find(args)
	return err == nil && (cmd.Flags().Lookup("state-dir") != nil || cmd.InheritedFlags().Lookup("state-dir") != nil)
}

func TestUsageErrors(t *testing.T) {
	sig := []string{"--owner", "www-data", "--key", "private", "--exe", "/usr/sbin/apache2"}
	// with puts the signature flags before the flag under test, which wins.
	with := func(args ...string) []string {
		return append(append(append([]string{}, args[:2]...), sig...), args[2:]...)
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "apache2")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"ipc", "reap"}, "needs a signature"},
		{[]string{"ipc", "reap", "--owner", "33"}, "needs at least --owner, --key and --exe"},
		{[]string{"ipc", "ls", "--owner", "33", "--exe", "/usr/sbin/apache2"}, "needs at least --owner, --key and --exe"},
		{[]string{"ipc", "reap", "--owner", "33", "--key", "private", "--exe", "apache2"}, `bad --exe "apache2": not an absolute path`},
		{[]string{"ipc", "reap", "--owner", "33", "--key", "private", "--exe", "/nonexistent/apache2"}, "not an executable file"},
		{[]string{"ipc", "reap", "--owner", "33", "--key", "private", "--exe", script}, "not an executable file"},
		{[]string{"ipc", "reap", "--service", "nope"}, "unknown service"},
		{[]string{"reload", "apache2", "--full", "--hard"}, "--full and --hard exclude each other"},
		{with("ipc", "ls", "--lineage-window", "-1m"), "bad --lineage-window -1m0s"},
		{with("ipc", "ls", "--key", "zz"), `bad --key "zz"`},
		{with("ipc", "ls", "--mode", "999"), `bad --mode "999"`},
		{with("ipc", "ls", "--nsems", "0"), "bad --nsems"},
		{with("ipc", "ls", "--kind", "sem,pipe"), `bad --kind "pipe"`},
		{with("ipc", "ls", "--owner", "no-such-user-xyz"), `unknown user "no-such-user-xyz"`},
		{[]string{"ipc", "ls", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"ipc", "ls", "extra"}, "takes no arguments"},
		{[]string{"ipc", "bogus"}, `unknown command "bogus"`},
		{[]string{"ipc", "diff", "a.json"}, "takes two snapshot files"},
		{[]string{"ipc", "diff", "/nonexistent/a", "/nonexistent/b"}, "read snapshot"},
		{[]string{"--log-level", "loud", "ipc", "ls"}, `bad --log-level "loud"`},
		{[]string{"--log-format", "xml", "ipc", "ls"}, `bad --log-format "xml"`},
		{[]string{"nosuch"}, "unknown service"},
		{[]string{"apache2", "extra"}, "unknown command"},
		{[]string{"apache2", "--jitter", "-1s"}, "bad --max-reloads 0 or --jitter -1s"},
		{[]string{"reload", "apache2", "--drain-timeout", "-1s"}, "bad --drain-timeout -1s"},
		{[]string{"restart", "apache2", "--hook-timeout", "-1s"}, "bad --hook-timeout -1s"},
		{[]string{"apache2", "--status-url", "http://127.0.0.1/server-status?auto"}, "--status-url is read only to count reloads for --max-reloads"},
		{[]string{"reload", "apache2", "--max-reloads", "5", "--status-url", "127.0.0.1/server-status"}, `bad --status-url "127.0.0.1/server-status"`},
		{[]string{"stop", "apache2", "--ladder", "TERM"}, "bad --ladder"},
		{[]string{"start", "apache2", "--timeout", "-1s"}, "bad --timeout -1s"},
		{[]string{"restart", "apache2", "--binary", "apache2"}, `bad --binary "apache2": not an absolute path`},
	}
	state := t.TempDir()
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			args := tt.args
			if keepsState(args) { // never the host's state, even if parsing let it through
				args = append(slices.Clip(args), "--state-dir", state)
			}
			code, out, errOut := runCLI(t, args...)
			if code != exitUsage || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q (stdout %q)", code, errOut, exitUsage, tt.want, out)
			}
		})
	}
}

// TestConfigTestRefused: a server config that fails its config test
// refuses before anything is judged or touched (exit 3).
func TestConfigTestRefused(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl")
	bad := filepath.Join(t.TempDir(), "bad.conf")
	if err := os.WriteFile(bad, []byte("NoSuchDirective on\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI(t, "ipc", "reap", "--service", "apache2", "--conf", bad, "--yes", "--state-dir", t.TempDir())
	if code != exitRefused || !strings.Contains(errOut, "config test") {
		t.Fatalf("exit %d, stderr %s; want exit %d naming the config test", code, errOut, exitRefused)
	}
}

func TestDiffRejectsNonSnapshot(t *testing.T) {
	f := filepath.Join(t.TempDir(), "x.json")
	if err := os.WriteFile(f, []byte(`{"hello": 1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCLI(t, "ipc", "diff", f, f); code != exitUsage || !strings.Contains(errOut, "is not an ipc snapshot") {
		t.Fatalf("exit %d, %q", code, errOut)
	}
}

var explicitApache = []string{"--owner", "www-data", "--creator", "root", "--nsems", "1", "--key", "private", "--mode", "0600", "--exe", "/usr/sbin/apache2"}

func TestReapPlanThenYes(t *testing.T) {
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	dead := semtest.DeadSets(t, "3 33 1")
	held := semtest.DeadSets(t, "1 33 1")[0]
	semtest.Holder(t, held)

	reap := append([]string{"ipc", "reap", "--state-dir", t.TempDir()}, explicitApache...)
	code, out, errOut := runCLI(t, reap...)
	if code != exitOK || !strings.Contains(out, "plan: 3 orphan(s) to remove; kept 1 live") {
		t.Fatalf("plan: exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	if n := len(semIDs(t)); n != 4 {
		t.Fatalf("the plan changed something: %d sets left, want 4", n)
	}

	code, out, errOut = runCLI(t, append(slices.Clip(reap), "--yes", "--json")...)
	if code != exitOK {
		t.Fatalf("reap --yes: exit %d\n%s", code, errOut)
	}
	var outcomes []ipcguard.Outcome
	if err := json.Unmarshal([]byte(out), &outcomes); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out)
	}
	removed := map[int]bool{}
	for _, o := range outcomes {
		if o.Removed {
			removed[o.ID] = true
		}
	}
	for _, id := range dead {
		if !removed[id] {
			t.Errorf("dead set %d not removed: %+v", id, outcomes)
		}
	}
	if left := semIDs(t); len(left) != 1 || !left[held] {
		t.Errorf("sets left %v, want only the held set %d", left, held)
	}
	// One JSON log event per removal, with its proof.
	events := 0
	for _, line := range strings.Split(strings.TrimSpace(errOut), "\n") {
		var ev struct {
			Message string   `json:"message"`
			Proof   []string `json:"proof"`
			ID      int      `json:"id"`
		}
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Message == "reaped semaphore set" && len(ev.Proof) > 0 {
			events++
		}
	}
	if events != len(dead) {
		t.Errorf("%d removal events with a proof, want %d:\n%s", events, len(dead), errOut)
	}
}

func TestLsAndDiff(t *testing.T) {
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	dir, state := t.TempDir(), t.TempDir()
	ls := func(name string) string {
		code, out, errOut := runCLI(t, "ipc", "ls", "--json", "--state-dir", state)
		if code != exitOK {
			t.Fatalf("ls: exit %d: %s", code, errOut)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	before := ls("before.json")
	ids := semtest.DeadSets(t, "2 33 1")
	after := ls("after.json")
	code, out, _ := runCLI(t, "ipc", "diff", before, after)
	for _, id := range ids {
		if want := "+ sem " + strconv.Itoa(id) + " key 0 (private) uid 33"; code != exitOK || !strings.Contains(out, want) {
			t.Errorf("diff: exit %d, missing %q in:\n%s", code, want, out)
		}
	}
	// Without a signature nothing is orphan: the sets are unknown.
	code, out, _ = runCLI(t, "ipc", "ls", "--proof", "--state-dir", state)
	if code != exitOK || !strings.Contains(out, "0 orphan, 0 live, 2 unknown") || !strings.Contains(out, "semaphore sets: 2 of 32000") {
		t.Errorf("ls: exit %d:\n%s", code, out)
	}
}

// TestReapServiceApache runs the whole path on a real Apache: User read by
// the server's own config test (apache2ctl -t -D DUMP_RUN_CFG), a live
// master recorded by a lineage, and sets leaked by a kill -9 predecessor.
func TestReapServiceApache(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	cfg := apachetest.Config{MPM: "prefork", SysvSem: true, AuthDigest: true, SSL: true}
	apachetest.Start(t, cfg).KillGroup9()
	leaked := semIDs(t)
	before, err := ipcguard.Take(t.Context(), ipcguard.Source{})
	if err != nil {
		t.Fatal(err)
	}
	srv := apachetest.Start(t, cfg)
	after, err := ipcguard.Take(t.Context(), ipcguard.Source{})
	if err != nil {
		t.Fatal(err)
	}
	procs, err := ipcguard.ReadProcTable("/proc")
	if err != nil {
		t.Fatal(err)
	}
	master, _ := procs.Live(srv.MasterPID())
	// Without a lineage the default window (10 s or more) keeps every set,
	// the leaked ones included: they are too young to tell apart.
	code, out, errOut := runCLI(t, "ipc", "reap", "--service", "apache2", "--conf", srv.ConfPath, "--state-dir", t.TempDir(), "--yes")
	if n := len(semIDs(t)); code != exitOK || n != len(after.Sem) {
		t.Fatalf("no lineage: exit %d, %d sets left, want all %d\n%s\n%s", code, n, len(after.Sem), out, errOut)
	}
	state := t.TempDir()
	lineage := ipcguard.NewLineage("apache2", master.Key(), before, after)
	if err := ipcguard.SaveLineage(filepath.Join(state, "lineage"), lineage); err != nil {
		t.Fatal(err)
	}

	code, out, errOut = runCLI(t, "ipc", "reap", "--service", "apache2", "--conf", srv.ConfPath, "--state-dir", state, "--yes")
	if code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	left := semIDs(t)
	for id := range leaked {
		if left[id] {
			t.Errorf("leaked set %d not reaped\n%s\n%s", id, out, errOut)
		}
	}
	for _, o := range lineage.Objects {
		if !left[o.ID] {
			t.Errorf("live set %d reaped", o.ID)
		}
	}
	if code, _, err := srv.GetTLS("/"); err != nil || code != 200 {
		t.Errorf("TLS GET after reap: %d, %v", code, err)
	}
}

func semIDs(t *testing.T) map[int]bool {
	t.Helper()
	sets, err := ipcguard.ReadSemTable("/proc")
	if err != nil {
		t.Fatal(err)
	}
	m := map[int]bool{}
	for _, s := range sets {
		m[s.ID] = true
	}
	return m
}
