package main

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// slowTermChild ignores TERM for a while: it says so on stdout, sleeps
// 1 s, and exits 7.
const slowTermChild = `trap 'echo term-"trapped"; sleep 1; exit 7' TERM; while :; do sleep 0.1; done`

// awaitTermTrap waits until the child's TERM trap ran (its output; the
// argv in the start line reads term-"trapped").
func (r *runProc) awaitTermTrap() {
	r.t.Helper()
	r.await(1, 20*time.Second, "the child's TERM trap", func(logEvent) bool { return strings.Contains(r.output(), "term-trapped") })
}

// TestRunSignalsDuringLadder: TERM starts the ladder; a HUP and a USR1
// arriving while the child takes its time to exit neither kill
// safe-restart nor orphan the child: it completes the ladder and exits
// with the child's status, 7.
func TestRunSignalsDuringLadder(t *testing.T) {
	r := safeRestartRun(t, "--state-dir", t.TempDir(), "--", "sh", "-c", slowTermChild)
	r.await(1, 20*time.Second, "start", event("start", ""))
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r.awaitTermTrap()
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGUSR1} {
		if err := r.cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
	}
	if code := r.exit(20 * time.Second); code != 7 {
		t.Fatalf("exit %d, want the child's 7:\n%s", code, r.output())
	}
}
