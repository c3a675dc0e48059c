package main

import (
	"fmt"
	"testing"

	"github.com/safe-restart/safe-restart/supervise/server"
	"github.com/safe-restart/safe-restart/supervise/systemd"
)

// TestExitCodeSystemd: systemd not answering before an operation acts is a
// refusal (3); after it acted, the command reports exit 1; a --unit that
// systemd does not have, or an install without a unit, is a usage error.
func TestExitCodeSystemd(t *testing.T) {
	cant := fmt.Errorf("stop: %w", fmt.Errorf("%w: systemctl show apache2.service: exit status 1", systemd.ErrServiceManager))
	for _, tt := range []struct {
		err  error
		want int
	}{
		{cant, exitRefused},
		{&exitError{code: exitFailed, err: cant}, exitFailed},
		{fmt.Errorf("%w: --unit x", server.ErrUnknownUnit), exitUsage},
		{fmt.Errorf("%w for apache2", systemd.ErrNoUnit), exitUsage},
		{fmt.Errorf("%w: unit inactive", systemd.ErrUnitModel), exitFailed},
	} {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}
