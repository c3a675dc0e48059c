package ipcguard

import "errors"

// Sentinel errors. Callers match them with errors.Is.
var (
	// ErrMalformed reports input from /proc or /dev/shm that does not parse.
	// The wrapping error names the file and line.
	ErrMalformed = errors.New("malformed input")
	// ErrChanged reports an object that changed between its proof and its
	// removal; it was left alone.
	ErrChanged = errors.New("changed since proof")
	// ErrGone reports an object that no longer exists.
	ErrGone = errors.New("no longer exists")
	// ErrNoProcess reports a process that does not exist: it exited and
	// was reaped (or never existed) before or while it was read.
	ErrNoProcess = errors.New("no such process")
)
