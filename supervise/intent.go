package supervise

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/safe-restart/safe-restart/ipcguard"
)

// A stop intent records the master a stop is about to signal, before the
// first signal, and is removed when the tree has exited. If safe-restart
// is killed in between (SIGKILL, OOM, a reboot of the runner), the next run
// finds the master still finishing its graceful stop, with its pidfile
// already gone, and completes the stop instead of starting a second master
// beside it.
type stopIntent struct {
	Service string        `json:"service"`
	Master  ipcguard.Proc `json:"master"`
}

func intentPath(dir, service string) string {
	return filepath.Join(dir, service+".stopping.json")
}

func saveIntent(dir, service string, master ipcguard.Proc) error {
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save stop intent: %w", err)
	}
	data, err := json.Marshal(stopIntent{Service: service, Master: master})
	if err != nil {
		return fmt.Errorf("save stop intent: %w", err)
	}
	if err := writeAtomic(intentPath(dir, service), data, 0o600); err != nil {
		return fmt.Errorf("save stop intent: %w", err)
	}
	return nil
}

// pendingStop returns the master of an unfinished stop if it is still the
// same live process, and clears an intent whose master is gone.
func pendingStop(dir, procRoot, service string) (*ipcguard.Proc, error) {
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
	var in stopIntent
	if err := json.Unmarshal(data, &in); err != nil {
		return nil, fmt.Errorf("read stop intent %s: %w", intentPath(dir, service), err)
	}
	if now, err := Same(procRoot, in.Master); err == nil && now.Alive() {
		return &now, nil
	}
	clearIntent(dir, service)
	return nil, nil
}

func clearIntent(dir, service string) {
	if dir != "" {
		_ = os.Remove(intentPath(dir, service))
	}
}
