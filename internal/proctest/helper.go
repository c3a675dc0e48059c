//go:build linux

package proctest

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"testing"

	"github.com/safe-restart/safe-restart/ipcguard"
)

// helperEnv names the part a test binary re-executed by StartHelper plays:
//
//	ignore-term: ignore SIGTERM (as an event MPM orphan does), say "ready", block
//	any other:   say "ready", block (default signal handling)
const helperEnv = "SAFE_RESTART_TEST_HELPER"

// RunHelper plays the helper's part and exits when this test binary was
// started by StartHelper; otherwise it returns at once. Call it first in
// TestMain.
func RunHelper() {
	switch os.Getenv(helperEnv) {
	case "":
		return
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
	}
	fmt.Println("ready")
	os.Stdout.Close()
	_, _ = io.Copy(io.Discard, os.Stdin) // until killed
	os.Exit(0)
}

// StartHelper starts the test binary at path (os.Args[0]: this one) as
// the helper name, with attr (nil: none), waits for its "ready", and
// returns it with its identity. Its TestMain must call RunHelper. It is
// killed and reaped at cleanup.
func StartHelper(t *testing.T, path, name string, attr *syscall.SysProcAttr) (*exec.Cmd, ipcguard.Proc) {
	t.Helper()
	cmd := exec.Command(path, "-test.run=^$")
	cmd.SysProcAttr = attr
	cmd.Env = append(os.Environ(), helperEnv+"="+name)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = stdin.Close(); _ = cmd.Wait() })
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("helper %s: %q, %v", name, line, err)
	}
	p, err := ipcguard.ReadProc(procRoot, cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	return cmd, p
}
