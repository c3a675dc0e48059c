package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestRunFailedStartIsACrash: a start that never serves (its health URL
// refuses) is stopped by the ladder, and the child exits 0 on TERM, as
// nginx and php-fpm do on their graceful stop. That is a crash, not a
// clean exit: it is restarted after the backoff, and at --max-restarts
// safe-restart gives up with a nonzero status.
func TestRunFailedStartIsACrash(t *testing.T) {
	r := safeRestartRun(t, "--state-dir", t.TempDir(), "--timeout", "300ms", "--health-url", "http://127.0.0.1:9/",
		"--max-restarts", "1", "--backoff", "50ms", "--",
		"sh", "-c", `trap "exit 0" TERM; while :; do sleep 0.1; done`)
	if code := r.exit(60 * time.Second); code == 0 {
		t.Fatalf("exit 0 after starts that never served:\n%s", r.output())
	}
	r.await(2, time.Second, "two starts", event("start", ""))
	r.await(1, time.Second, "a restart after the failed start", event("restart", "restarting the child after a backoff"))
	r.await(1, time.Second, "give-up", event("give-up", ""))
}

// markerHealth is a health URL that passes once per start: the child
// creates the marker file as it starts, the first check consumes it,
// every later one fails (500).
func markerHealth(t *testing.T) (url, marker string) {
	marker = filepath.Join(t.TempDir(), "up")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if os.Remove(marker) != nil {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL, marker
}

// TestRunHealthRestartsBackOff: every generation serves once, then fails
// its health checks. The health restarts run under the crash policy:
// each waits the backoff (50 ms, then 100 ms, logged), and at
// --max-restarts 2 safe-restart gives up, exiting with the child's
// status (7, from its TERM trap).
func TestRunHealthRestartsBackOff(t *testing.T) {
	url, marker := markerHealth(t)
	r := safeRestartRun(t, "--state-dir", t.TempDir(), "--health-url", url, "--health-interval", "100ms", "--health-failures", "2",
		"--max-restarts", "2", "--backoff", "50ms", "--", "sh", "-c", "touch "+marker+"; "+slowTermChild)
	if code := r.exit(60 * time.Second); code != 7 {
		t.Fatalf("exit %d, want the child's 7 at the give-up:\n%s", code, r.output())
	}
	var backoffs []float64
	for _, ev := range r.events() {
		if ev.str("event") == "restart" && ev.num("backoff") > 0 {
			backoffs = append(backoffs, ev.num("backoff"))
		}
	}
	if len(backoffs) != 2 || backoffs[0] != 50 || backoffs[1] != 100 {
		t.Errorf("backoffs %v ms, want [50 100]:\n%s", backoffs, r.output())
	}
	r.await(1, time.Second, "give-up", event("give-up", ""))
}

// TestRunStopDuringHealthRestart: TERM while a health restart's ladder
// runs ends safe-restart with the child's status (7), not an error and
// no new start.
func TestRunStopDuringHealthRestart(t *testing.T) {
	url, marker := markerHealth(t)
	r := safeRestartRun(t, "--state-dir", t.TempDir(), "--health-url", url, "--health-interval", "100ms", "--health-failures", "2",
		"--backoff", "50ms", "--", "sh", "-c", "touch "+marker+"; "+slowTermChild)
	r.await(1, 20*time.Second, "a health restart", event("restart", "restarting the child"))
	r.awaitTermTrap()
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := r.exit(20 * time.Second); code != 7 {
		t.Fatalf("exit %d, want the child's 7:\n%s", code, r.output())
	}
	if n := len(r.await(1, 0, "start", event("start", ""))); n != 1 {
		t.Errorf("%d starts, want 1: none after the stop", n)
	}
}
