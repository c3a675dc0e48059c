package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// oomChild waits for the file $1, then runs a subshell that reads 400 MB
// into memory and lives on. The subshell makes itself the OOM killer's
// first choice (oom_score_adj 1000: raising it needs no privilege), so
// that it is the victim, not safe-restart (large under -race).
const oomChild = `while [ ! -e "$1" ]; do sleep 0.05; done; (echo 1000 > /proc/self/oom_score_adj; x=$(head -c 400000000 /dev/zero | tr "\0" x)); while :; do sleep 0.1; done`

// TestRunOOMNaming: safe-restart and its child in a memory cgroup capped
// at 128 MiB, as in a container. A worker of the child is OOM-killed
// (logged as such); an operator's kill -9 of the child afterwards is a
// SIGKILL, not an OOM kill.
func TestRunOOMNaming(t *testing.T) {
	cg := newMemCgroup(t, 128<<20)
	t.Cleanup(func() { cg.killAll(t) }) // before the group's removal: were safe-restart killed, its child would live on
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	hog := filepath.Join(t.TempDir(), "hog")
	enter := `echo $$ > "$0" && exec "$@"`
	r := startRun(t, "sh", "-c", enter, filepath.Join(cg.dir, "cgroup.procs"), self, "--log-format", "json", "run",
		"--state-dir", t.TempDir(), "--max-memory", "1G", "--memory-interval", "200ms", "--backoff", "50ms",
		"--", "sh", "-c", oomChild, "sh", hog)
	pid := int(r.await(1, 30*time.Second, "serving", event("serving", ""))[0].num("pid"))
	if err := os.WriteFile(hog, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r.await(1, 60*time.Second, "the worker's OOM kill", event("oom", ""))
	if err := os.Remove(hog); err != nil { // the next generation runs no hog
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ev := r.await(1, 20*time.Second, "the child's exit", event("exit", "the child ended"))[0]
	if ev.str("signal") != "SIGKILL" || ev.str("message") != "the child ended: killed by SIGKILL" || ev["oom_killed"] != false {
		t.Errorf("exit line %v: want a SIGKILL not named an OOM kill", ev)
	}
	r.await(2, 30*time.Second, "the next start", event("serving", ""))
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r.exit(30 * time.Second)
}

// killAll SIGKILLs the processes left in the group (the test's own: it
// created the group and started all that entered it).
func (c testCgroup) killAll(t *testing.T) {
	t.Helper()
	for _, f := range strings.Fields(readFile(t, filepath.Join(c.dir, "cgroup.procs"))) {
		if pid, err := strconv.Atoi(f); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// TestRunLadderKillIsNoOOMKill: the child answers TERM by running a
// worker that the OOM killer kills (during the ladder's graceful wait,
// after any reading of the count) and lives on; the ladder's own SIGKILL
// then ends it. That status is the ladder's KILL, not an OOM kill.
func TestRunLadderKillIsNoOOMKill(t *testing.T) {
	cg := newMemCgroup(t, 128<<20)
	t.Cleanup(func() { cg.killAll(t) })
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	child := `trap '(echo 1000 > /proc/self/oom_score_adj; x=$(head -c 400000000 /dev/zero | tr "\0" x))' TERM; while :; do sleep 0.1; done`
	r := startRun(t, "sh", "-c", `echo $$ > "$0" && exec "$@"`, filepath.Join(cg.dir, "cgroup.procs"), self, "--log-format", "json", "run",
		"--state-dir", t.TempDir(), "--", "sh", "-c", child)
	r.await(1, 30*time.Second, "serving", event("serving", ""))
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := r.exit(60 * time.Second); code != 128+int(syscall.SIGKILL) {
		t.Fatalf("exit %d, want 137 (the ladder's KILL):\n%s", code, r.output())
	}
	if n := cg.value(t, "memory.oom_control", "oom_kill"); n < 1 {
		t.Fatalf("the cgroup counted %d OOM kills: the worker was not OOM-killed", n)
	}
	ev := r.await(1, time.Second, "the child's exit", event("exit", "the child ended"))[0]
	if ev.str("signal") != "SIGKILL" || ev["oom_killed"] != false {
		t.Errorf("exit line %v: want the ladder's SIGKILL, not an OOM kill", ev)
	}
}
