package proc

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/safe-restart/safe-restart/ipcguard"
)

// SignalProc sends sig to p, never to a process that took over its pid:
// it pins the pid with a pidfd first, then checks the identity, then
// signals through the pidfd. A process already gone is not an error; a
// reused pid is ErrPIDReused and nothing is sent.
func SignalProc(procRoot string, p ipcguard.Proc, sig syscall.Signal) error {
	fd, err := PidfdOpen(p.PID)
	switch {
	case errors.Is(err, errNoSuchProcess):
		return nil
	case errors.Is(err, errNoPidfd):
		fd = -1 // kill(2) after the identity check: a small reuse window remains
	case err != nil:
		return fmt.Errorf("send %s to pid %d: %w", SigName(sig), p.PID, err)
	}
	if fd >= 0 {
		defer CloseFD(fd)
	}
	if _, err := Same(procRoot, p); err != nil {
		if errors.Is(err, ipcguard.ErrNoProcess) {
			return nil
		}
		return fmt.Errorf("send %s to pid %d: %w", SigName(sig), p.PID, err)
	}
	if fd < 0 {
		err = killPID(p.PID, sig)
	} else {
		err = pidfdSignal(fd, sig)
	}
	if err != nil {
		return fmt.Errorf("send %s to pid %d: %w", SigName(sig), p.PID, err)
	}
	return nil
}
