package proc

import "errors"

// Sentinel errors about processes. Callers match them with errors.Is.
var (
	// ErrStalePIDFile reports a pidfile whose pid is not running.
	ErrStalePIDFile = errors.New("stale pidfile")
	// ErrBadPIDFile reports a pidfile that does not hold one pid, or is
	// no regular file.
	ErrBadPIDFile = errors.New("malformed pidfile")
	// ErrForeignProcess reports a pid (in a pidfile or a stop record) that
	// is not a master of this server: it runs another program, or it is
	// one of the server's workers, or another instance's master.
	ErrForeignProcess = errors.New("not the server's process")
	// ErrPIDReused reports a pid now held by a process other than the one
	// recorded (a different start time): it is never signalled.
	ErrPIDReused = errors.New("pid reused")
	// ErrStillAlive reports processes that outlived every step of a ladder.
	ErrStillAlive = errors.New("still alive")
)

// ErrNoKeyTable reports a process whose pthread key table cannot be read:
// no glibc mapped, a glibc without the __pthread_keys symbol, or no read
// access to /proc/PID/mem.
var ErrNoKeyTable = errors.New("pthread key table not readable")
