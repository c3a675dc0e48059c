//go:build linux

package trial

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/supervise/proc"
)

// The trial's sandbox is built by this program re-executed
// (/proc/self/exe) as PID 1 of new mount, PID, network, IPC and UTS
// namespaces: the pattern of runc's init and moby's reexec. The copy knows
// itself by trialEnv naming the fd its trialSpec arrives on, and by being
// PID 1, which safe-restart never is otherwise; it never returns to the
// program's main (or to a test binary's TestMain).
func init() {
	if v, ok := os.LookupEnv(trialEnv); ok && v == strconv.Itoa(trialSpecFD) && os.Getpid() == 1 {
		os.Exit(trialChild()) //permit:os.Exit the trial's init is a process of its own
	}
}

// trialSpecFD is the fd the trial's init reads its trialSpec from.
const trialSpecFD = 3

// trialChild builds the sandbox, runs the starter, reports on stdout, then
// stays as the namespace's init, reaping, until its stdin closes (the
// parent is done or dead: it is watched from the start). Every process of
// the trial dies with it.
func trialChild() int {
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0) //permit:os.Exit the trial's init ends with its parent's pipe
	}()
	enc := json.NewEncoder(os.Stdout)
	var spec trialSpec
	specFile := os.NewFile(trialSpecFD, "spec")
	err := json.NewDecoder(specFile).Decode(&spec)
	specFile.Close() // the server must not inherit it
	if err != nil || len(spec.Argv) == 0 {
		_ = enc.Encode(trialMsg{Setup: fmt.Sprintf("bad trial spec: %v", err)})
		return 1
	}
	emptied, err := buildSandbox(spec)
	if err == nil && spec.NoFile[0] > 0 {
		// syscall's Setrlimit, which the starter inherits (os/exec gives a
		// child this program's original soft limit otherwise).
		err = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: spec.NoFile[0], Max: spec.NoFile[1]})
	}
	if err != nil {
		_ = enc.Encode(trialMsg{Setup: err.Error()})
		return 1
	}
	_ = enc.Encode(trialMsg{Ready: true, Emptied: emptied})
	_ = enc.Encode(runTrialStarter(spec))
	// The namespace's init reaps what is re-parented to it (the master once
	// its starter exited, and what the master leaves) until the process
	// exits with its stdin's EOF.
	proc.NewReaper(proc.DefaultRoot, true, zerolog.Nop()).Run(context.Background())
	return 0
}

// runTrialStarter runs the server's start command in the sandbox and
// returns its exit status and output.
func runTrialStarter(spec trialSpec) trialMsg {
	cmd := exec.Command(spec.Argv[0], spec.Argv[1:]...) //permit:exec.Command the trial's init, bounded by its parent, runs the starter
	cmd.Env = spec.Env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// A daemon that kept the starter's output open must not hold it up.
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	msg := trialMsg{Started: true, Output: out.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		msg.Exit = exit.ExitCode()
	case err != nil:
		msg.Exit, msg.Output = -1, err.Error()
	}
	return msg
}

// trialStage is where the i-th overlay's upper and work directories live,
// on the trial's own /dev/shm.
func trialStage(i int) string {
	return filepath.Join("/dev/shm", "safe-restart-trial", strconv.Itoa(i))
}
