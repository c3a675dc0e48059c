//go:build linux

package trial

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/internal/nstest"
	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/server"
)

// TestTrialInitNeedsPID1: the trial's marker in a process that is not PID
// 1 of its namespace does not make it the trial's init (which would make
// the caller's mounts read-only and add routes to its network): the
// program runs as usual, here a test binary with no test to run.
func TestTrialInitNeedsPID1(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), trialEnv+"="+strconv.Itoa(trialSpecFD))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PASS") {
		t.Fatalf("with %s set, not PID 1: %v\n%s", trialEnv, err, out)
	}
}

// TestTrialInterruptedIsNotSkipped: a trial interrupted (SIGINT, SIGTERM
// cancel the context) returns the context's error, never "skipped" with a
// nil error, after which a reload would go ahead unproven.
func TestTrialInterruptedIsNotSkipped(t *testing.T) {
	if os.Geteuid() != 0 && os.Getenv("CI") != "true" {
		t.Skip("a trial needs root for its namespaces")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	o := Options{Profile: server.Profile{Name: "apache2", Kind: "apache", Binary: "/bin/true", Driver: apacheProfile(t).Driver}, Log: zerolog.Nop()}
	rep, err := o.trial(ctx, server.RunConfig{PidFile: filepath.Join(dir, "x.pid"), ErrorLog: filepath.Join(dir, "error.log")}, ipcguard.Proc{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted trial: report %+v, error %v; want context.Canceled", rep, err)
	}
}

// TestRemountReadOnly: the fallback for kernels without mount_setattr
// leaves no mount of the namespace writable (here its private mount
// namespace: a file cannot be created in /dev/shm, the temporary
// directory or /var/tmp).
func TestRemountReadOnly(t *testing.T) {
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	mounts, err := mountPoints()
	if err != nil {
		t.Fatal(err)
	}
	if err := remountReadOnly(mounts); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/dev/shm/x", filepath.Join(os.TempDir(), "safe-restart-remount-test"), "/var/tmp/safe-restart-remount-test"} {
		if err := os.WriteFile(p, nil, 0o644); !errors.Is(err, syscall.EROFS) {
			t.Errorf("write %s after remountReadOnly: %v, want EROFS", p, err)
			os.Remove(p)
		}
	}
}
