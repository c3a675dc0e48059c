package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/safe-restart/safe-restart/internal/fpmtest"
	"github.com/safe-restart/safe-restart/internal/nstest"
)

// TestRunRestartNeedsAStartableConfig: php-fpm under run, its health URL
// failing once it serves, its config then broken. The health restart runs
// the config test before it stops anything: it refuses, logged, and the
// same master serves on (README.md invariant 5). When the master then dies
// (kill -9), the next start cannot prepare: that is a crash under the
// backoff, and at --max-restarts 1 safe-restart gives up with a nonzero
// status.
func TestRunRestartNeedsAStartableConfig(t *testing.T) {
	nstest.RequireBinaries(t, fpmtest.Binary)
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	var healthy atomic.Bool
	healthy.Store(true)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !healthy.Load() {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	t.Cleanup(hs.Close)
	srv := fpmtest.Prepare(t, fpmtest.Config{})
	r := fpmRun(t, srv, "--health-url", hs.URL, "--health-interval", "100ms", "--health-failures", "2",
		"--graceful-timeout", "1s", "--backoff", "50ms", "--max-restarts", "1")
	master := srv.MasterPID()
	if err := os.WriteFile(srv.ConfPath, []byte("[global\nthis is no php-fpm config\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	healthy.Store(false)
	ev := r.await(1, 30*time.Second, "refused restart", event("restart", "restart refused before stopping"))[0]
	if !strings.Contains(ev.str("reason"), "health check failed") || ev.str("error") == "" {
		t.Errorf("refusal %v: want the health reason and the config test's error", ev)
	}
	if srv.MasterPID() != master || syscall.Kill(master, 0) != nil {
		t.Fatalf("master %d gone after a refused restart (pidfile: %d):\n%s", master, srv.MasterPID(), r.output())
	}
	mustServe(t, srv, "after the refused restart")

	srv.KillMaster9()
	if code := r.exit(60 * time.Second); code == 0 {
		t.Fatalf("exit 0 after the child could not start again:\n%s", r.output())
	}
	r.await(1, time.Second, "a failed start counted as a crash", event("restart", "restarting the child after a backoff"))
	r.await(1, time.Second, "give-up", event("give-up", ""))
	if n := len(r.await(1, 0, "start", event("start", ""))); n != 1 {
		t.Errorf("%d starts, want 1: a broken config never starts", n)
	}
}
