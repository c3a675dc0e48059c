package supervise

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/safe-restart/safe-restart/internal/atomicfile"
	"github.com/safe-restart/safe-restart/supervise/server"
	"github.com/safe-restart/safe-restart/supervise/verify"
)

// LastOperation is the outcome of the last state-changing command run on a
// service (start, stop, restart, reload, ipc reap), kept in the state dir
// for `safe-restart metrics`: a fleet's dashboards see a reload that
// failed, or that only a restart recovered, without reading its logs.
type LastOperation struct {
	Service  string        `json:"service"`
	Op       string        `json:"op"`        // start, stop, restart, reload or ipc-reap
	ExitCode int           `json:"exit_code"` // safe-restart's exit code
	Result   string        `json:"result"`    // ok, failed, refused or recovered
	Error    string        `json:"error,omitempty"`
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration_ns"`
	// Receipt is what clients saw while a reload or restart acted (see
	// verify.Receipt); nil for other operations, or with --no-receipt.
	Receipt *verify.Receipt `json:"receipt,omitempty"`
}

// SaveLastOperation records op as its service's last operation in dir
// (StateDir.LastOperations: one file per service, SERVICE.json), replacing
// the previous record atomically (a temporary file in the same directory,
// then a rename), so a reader never sees half a record.
func SaveLastOperation(dir string, op LastOperation) error {
	if !server.ValidName.MatchString(op.Service) {
		return fmt.Errorf("save last operation: bad service name %q", op.Service)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save last operation: %w", err)
	}
	data, err := json.MarshalIndent(op, "", "  ")
	if err != nil {
		return fmt.Errorf("save last operation: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, op.Service+".json"), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("save last operation: %w", err)
	}
	return nil
}

// LoadLastOperations reads every service's last operation in dir,
// sorted by service. A missing directory means none. A record that does
// not parse is an error naming its file.
func LoadLastOperations(dir string) ([]LastOperation, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load last operations: %w", err)
	}
	var out []LastOperation
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".json") {
			continue
		}
		op, err := loadLastOperation(filepath.Join(dir, name))
		if err != nil {
			return out, err
		}
		out = append(out, op)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Service < out[j].Service })
	return out, nil
}

// loadLastOperation reads one record.
func loadLastOperation(path string) (LastOperation, error) {
	var op LastOperation
	data, err := os.ReadFile(path)
	if err != nil {
		return op, fmt.Errorf("load last operation: %w", err)
	}
	if err := json.Unmarshal(data, &op); err != nil {
		return op, fmt.Errorf("load last operation %s: %w", path, err)
	}
	if !server.ValidName.MatchString(op.Service) || op.Op == "" {
		return op, fmt.Errorf("load last operation %s: not a last-operation record", path)
	}
	return op, nil
}
