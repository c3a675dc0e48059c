package proc

import (
	"fmt"
	"syscall"
)

// ExitStatus is how a foreground child ended.
type ExitStatus struct {
	// Code is the exit code; -1 when a signal killed it.
	Code int `json:"code"`
	// Signal is the signal that killed it, 0 when it exited.
	Signal syscall.Signal `json:"signal,omitempty"`
	// CoreDumped says the kernel wrote a core dump.
	CoreDumped bool `json:"core_dumped,omitempty"`
	// OOMKilled says the SIGKILL came from the OOM killer: the memory
	// cgroup the child was in counted one more OOM kill (see OOMCounter).
	OOMKilled bool `json:"oom_killed,omitempty"`
}

// exitStatusOf converts a wait status.
func exitStatusOf(ws syscall.WaitStatus) ExitStatus {
	if ws.Signaled() {
		return ExitStatus{Code: -1, Signal: ws.Signal(), CoreDumped: ws.CoreDump()}
	}
	return ExitStatus{Code: ws.ExitStatus()}
}

// Success reports a clean exit (status 0).
func (s ExitStatus) Success() bool { return s.Signal == 0 && s.Code == 0 }

// ExitCode is the status a shell would report: the code, or 128+signal.
func (s ExitStatus) ExitCode() int {
	if s.Signal != 0 {
		return 128 + int(s.Signal)
	}
	return s.Code
}

func (s ExitStatus) String() string {
	switch {
	case s.OOMKilled:
		return "killed by the OOM killer (" + SigName(s.Signal) + ")"
	case s.Signal != 0 && s.CoreDumped:
		return "killed by " + SigName(s.Signal) + " (core dumped)"
	case s.Signal != 0:
		return "killed by " + SigName(s.Signal)
	}
	return fmt.Sprintf("exit code %d", s.Code)
}
