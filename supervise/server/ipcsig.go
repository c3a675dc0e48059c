package server

import (
	"context"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/ipcguard"
)

// MinLineageWindow is the smallest lineage window: a start detaches well
// within it on any machine we have seen.
const MinLineageWindow = 10 * time.Second

// LineageWindow bounds how long a start of this server takes before its
// master detaches: the larger of MinLineageWindow and 5x the measured
// config test (a start parses the same config, then opens logs and
// listeners).
func LineageWindow(configTest time.Duration) time.Duration {
	return max(MinLineageWindow, 5*configTest)
}

// IPCSignature asks the server for its run config and returns the
// signature of the IPC objects it creates, with the lineage window
// measured on the way; ErrNoIPC when it creates none.
func IPCSignature(ctx context.Context, p Profile, conf string) (ipcguard.Signature, RunConfig, error) {
	sig, rc, err := p.Prepare(ctx, conf, zerolog.Nop())
	if err != nil {
		return ipcguard.Signature{}, rc, err
	}
	if sig == nil {
		return ipcguard.Signature{}, rc, fmt.Errorf("%s (%s) %w", p.Name, p.Kind, ErrNoIPC)
	}
	return *sig, rc, nil
}
