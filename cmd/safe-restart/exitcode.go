package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise"
	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/server"
	"github.com/safe-restart/safe-restart/supervise/systemd"
	"github.com/safe-restart/safe-restart/supervise/trial"
)

// Exit codes (documented in README.md and `--help`).
const (
	exitOK        = 0 // done and verified
	exitFailed    = 1 // failed; the state is reported
	exitUsage     = 2 // usage or config error
	exitRefused   = 3 // refused before acting; nothing was touched
	exitRecovered = 4 // reload failed and a verified restart recovered the service
)

// exitCodes say what each exit code means, for --help and the man pages'
// EXIT STATUS.
var exitCodes = []struct {
	code    int
	meaning string
}{
	{exitOK, "done and verified"},
	{exitFailed, "failed; what was done and the service state are reported"},
	{exitUsage, "usage or configuration error, such as a bad service file, a signal that cannot stop or " +
		"reload anything, a state directory another user could write, or Apache run without root " +
		"(nothing was touched)"},
	{exitRefused, "refused before acting (config test, trial start, a listen address taken, IPC headroom, " +
		"lock timeout, a state directory that cannot be written, systemd not answering about the " +
		"unit, a pidfile or stop record that names no master of this server, a --pre-stop hook that failed); " +
		"nothing was touched"},
	{exitRecovered, "reload failed and a verified restart recovered the service"},
}

// exitCodesHelp is the exit-code table of --help, wrapped to 95 columns.
func exitCodesHelp() string {
	var b strings.Builder
	b.WriteString("Exit codes:")
	for _, e := range exitCodes {
		fmt.Fprintf(&b, "\n  %d ", e.code)
		width := 4
		for _, w := range strings.Fields(e.meaning) {
			if width+1+len(w) > 95 {
				b.WriteString("\n    ")
				width = 4
			}
			b.WriteString(" " + w)
			width += 1 + len(w)
		}
	}
	return b.String()
}

// exitError carries an exit code chosen by a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageError is a bad command line, with a hint for fixing it.
type usageError struct {
	err  error
	hint string
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(hint, format string, a ...any) error {
	return &usageError{err: fmt.Errorf(format, a...), hint: hint}
}

// exitCode maps an error to the process exit code.
func exitCode(err error) int {
	var ee *exitError
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		return ee.code
	case errors.Is(err, server.ErrConfigTest), errors.Is(err, supervise.ErrLockTimeout), errors.Is(err, supervise.ErrStateDir),
		errors.Is(err, proc.ErrForeignProcess), errors.Is(err, proc.ErrPIDReused), errors.Is(err, proc.ErrBadPIDFile),
		errors.Is(err, supervise.ErrHeadroom), errors.Is(err, trial.ErrFailed), errors.Is(err, trial.ErrCannotBind),
		errors.Is(err, systemd.ErrServiceManager), errors.Is(err, supervise.ErrPreStopHook):
		return exitRefused
	case errors.As(err, &ue), errors.Is(err, server.ErrUnknownService), errors.Is(err, server.ErrUnsupportedConfig),
		errors.Is(err, server.ErrServiceFile), errors.Is(err, server.ErrNoIPC), errors.Is(err, server.ErrUnknownUnit), errors.Is(err, systemd.ErrNoUnit),
		errors.Is(err, supervise.ErrUnsafeStateDir), errors.Is(err, server.ErrNotRoot):
		return exitUsage
	case isCobraUsage(err):
		return exitUsage
	}
	return exitFailed
}

// specUsage turns a signature or executable the operator got wrong into a
// usage error with its hint.
func specUsage(err error) error {
	var se *ipcguard.SpecError
	if errors.As(err, &se) {
		return &usageError{err: err, hint: se.Hint}
	}
	return err
}

// isCobraUsage reports cobra's own error for an unknown subcommand, the one
// usage error cobra does not let us type (flag errors go through
// SetFlagErrorFunc, argument errors through our Args functions).
func isCobraUsage(err error) bool {
	return strings.HasPrefix(err.Error(), "unknown command ")
}
