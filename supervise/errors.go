package supervise

import (
	"errors"
	"fmt"
)

// Sentinel errors of the operations. Callers match them with errors.Is;
// cmd/safe-restart maps them to exit codes.
var (
	// ErrLockTimeout reports a service lock that another safe-restart held
	// for longer than the caller would wait.
	ErrLockTimeout = errors.New("lock timeout")
	// ErrStateDir reports a state directory that could not be written
	// before anything was touched (read-only, full, a symlink where the
	// lock goes).
	ErrStateDir = errors.New("cannot use the state directory")
	// ErrUnsafeStateDir reports a state directory that another user could
	// have written: its stop records, lineages and locks steer what is
	// signalled and which IPC objects are removed, so none of it is read.
	ErrUnsafeStateDir = errors.New("unsafe state directory")
	// ErrHeadroom reports too few free semaphore sets for a start: it
	// would fail with ENOSPC (AH00023), so it is refused before acting.
	ErrHeadroom = errors.New("not enough IPC headroom")
	// ErrStartFailed reports a start that did not leave a verified server.
	ErrStartFailed = errors.New("start failed")
	// ErrReloadKilled reports a reload after which the server was not
	// serving; the report says whether a verified start recovered it.
	ErrReloadKilled = errors.New("reload left the server down")
	// ErrPreStopHook reports a pre-stop hook that failed: the restart was
	// refused before the old master was touched.
	ErrPreStopHook = errors.New("the pre-stop hook failed")
	// ErrPostStartHook reports a post-start hook that failed after the new
	// master was verified: the server serves.
	ErrPostStartHook = errors.New("the post-start hook failed")
)

// errUntouched is what interruptedUntouched says.
var errUntouched = errors.New("interrupted before the server was touched: what served serves on as before")

// interruptedUntouched is the error of an operation interrupted before it
// touched the server: whatever served, serves on.
func interruptedUntouched(err error) error {
	return fmt.Errorf("%w (%w)", errUntouched, err)
}
