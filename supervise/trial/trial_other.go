//go:build !linux

package trial

import (
	"context"
	"errors"
	"fmt"

	"github.com/safe-restart/safe-restart/supervise/server"
)

// runTrial needs Linux namespaces.
func (o Options) runTrial(context.Context, trialSpec, server.RunConfig, server.Trialer) (*Report, error) {
	return nil, fmt.Errorf("%w: %w", errSandbox, errors.ErrUnsupported)
}

// trialStage is unused without Linux namespaces.
func trialStage(int) string { return "" }

// sameMount: without Linux, one mount.
func sameMount(string, string) bool { return true }

// rlimitNoFile is unknown without prlimit(2).
func rlimitNoFile(int) [2]uint64 { return [2]uint64{} }
