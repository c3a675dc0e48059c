package supervise

import (
	"syscall"
	"time"
)

// DefaultGracefulWait bounds Apache's graceful stop when the configuration
// sets no GracefulShutdownTimeout (whose default, 0, waits forever).
const DefaultGracefulWait = 30 * time.Second

// ApacheLadder is Apache's stop ladder (REFERENCE.md §1): WINCH asks for a
// graceful stop (listeners close at once, children finish their requests)
// for graceful, then TERM (children are reclaimed, KILLed by the master
// after 9 s) for 10 s, then KILL to every survivor, which is what an
// event/worker orphan of a killed master needs.
func ApacheLadder(graceful time.Duration) Ladder {
	if graceful <= 0 {
		graceful = DefaultGracefulWait
	}
	return Ladder{
		{Signal: syscall.SIGWINCH, Wait: graceful},
		{Signal: syscall.SIGTERM, Wait: 10 * time.Second},
		{Signal: syscall.SIGKILL, Wait: 5 * time.Second, All: true},
	}
}
