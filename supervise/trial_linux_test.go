//go:build linux

package supervise

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
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
