package supervise

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/safe-restart/safe-restart/internal/atomicfile"
	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/server"
)

// A stop intent records the master a stop is about to signal, before the
// first signal, and is removed when the tree has exited. If safe-restart
// is killed in between (SIGKILL, OOM, a reboot of the runner), the next run
// finds the master still finishing its graceful stop, with its pidfile
// already gone, and completes the stop instead of starting a second master
// beside it.
//
// The stop of an overlap's old master also records its successor, the
// new master serving beside it: the old master removes the pidfile (which
// names the successor by then) as its graceful stop begins, so a killed
// safe-restart can leave none, and the next run restores it from here.
type stopIntent struct {
	Service   string         `json:"service"`
	Master    ipcguard.Proc  `json:"master"`
	Successor *ipcguard.Proc `json:"successor,omitempty"`
	// MasterGone says, as readIntent returns it, that Master has exited
	// and only the successor is left to see to.
	MasterGone bool `json:"-"`
}

func intentPath(dir, service string) string {
	return filepath.Join(dir, service+".stopping.json")
}

func saveIntent(dir, service string, master ipcguard.Proc, successor *ipcguard.Proc) error {
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save stop intent: %w", err)
	}
	data, err := json.Marshal(stopIntent{Service: service, Master: master, Successor: successor})
	if err != nil {
		return fmt.Errorf("save stop intent: %w", err)
	}
	if err := atomicfile.WriteFile(intentPath(dir, service), data, 0o600); err != nil {
		return fmt.Errorf("save stop intent: %w", err)
	}
	return nil
}

// pendingStop returns the master of an unfinished stop if it is still the
// same live process, and clears an intent whose master is gone.
func pendingStop(dir, procRoot string, p server.Profile, pidFile string) (*ipcguard.Proc, error) {
	in, err := readIntent(dir, procRoot, p, pidFile)
	if err != nil || in == nil || in.MasterGone {
		return nil, err
	}
	return &in.Master, nil
}

// readIntent returns the unfinished stop (see pendingStop): its master as
// it is now, and its successor only while it is the same live process. An
// intent whose master has exited is cleared, unless its successor lives
// (MasterGone: its pidfile may still need writing, see
// stopPendingBeside). The record is proven before it is trusted, as a
// pidfile is: it is this service's (p), its live master is a master of
// the server (proc.ProveMaster, which looks for the old master of a binary
// upgrade beside pidFile), and its successor runs the server's binary;
// anything else is an error that leaves the record and every process
// alone.
func readIntent(dir, procRoot string, p server.Profile, pidFile string) (*stopIntent, error) {
	service, exe := p.Name, p.Binary
	if dir == "" {
		return nil, nil
	}
	data, err := os.ReadFile(intentPath(dir, service))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read stop intent: %w", err)
	}
	path := intentPath(dir, service)
	var in stopIntent
	if err := json.Unmarshal(data, &in); err != nil {
		return nil, fmt.Errorf("read stop intent %s: %w", path, err)
	}
	if in.Service != service {
		return nil, fmt.Errorf("%w: stop record %s is for service %q, not %q: remove it", proc.ErrForeignProcess, path, in.Service, service)
	}
	if in.Successor != nil {
		s, err := proc.Same(procRoot, *in.Successor)
		switch {
		case err != nil || !s.Alive() || (!proc.Runs(s, exe) && proc.Exiting(procRoot, s, exe)):
			in.Successor = nil // gone, or in its exit: nothing serves there
		case !proc.Runs(s, exe):
			return nil, fmt.Errorf("%w: stop record %s names successor %d, which runs %q, not %s: remove it", proc.ErrForeignProcess, path, s.PID, s.Exe, exe)
		default:
			in.Successor = &s
		}
	}
	now, err := proc.Same(procRoot, in.Master)
	switch {
	case err == nil && now.Alive():
		if err := proc.ProveMaster(procRoot, now, exe, path, pidFile); err != nil && !errors.Is(err, proc.ErrStalePIDFile) {
			return nil, fmt.Errorf("%w: remove it", err)
		}
		in.Master = now
	case in.Successor != nil:
		in.MasterGone = true // the successor's pidfile may still be missing
	default:
		clearIntent(dir, service)
		return nil, nil
	}
	return &in, nil
}

func clearIntent(dir, service string) {
	if dir != "" {
		_ = os.Remove(intentPath(dir, service))
	}
}
