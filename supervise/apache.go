package supervise

import (
	"syscall"
	"time"
)

// DefaultGracefulWait bounds Apache's graceful stop by default (the
// configuration's GracefulShutdownTimeout defaults to 0, waiting forever).
const DefaultGracefulWait = 30 * time.Second

// ApacheLadder is Apache's stop ladder (REFERENCE.md §1): WINCH asks for a
// graceful stop (listeners close at once, children finish their requests)
// for graceful, then TERM (children are reclaimed, KILLed by the master
// after 9 s) for 10 s, then KILL to every survivor, which is what an
// event/worker orphan of a killed master needs. A graceful of 0 skips the
// WINCH step: Apache's graceful stop polls its children once a second, so
// it refuses new connections for at least a second, where TERM cuts the
// requests in flight but is done in milliseconds.
func ApacheLadder(graceful time.Duration) Ladder {
	l := Ladder{
		{Signal: syscall.SIGTERM, Wait: 10 * time.Second},
		{Signal: syscall.SIGKILL, Wait: 5 * time.Second, All: true},
	}
	if graceful > 0 {
		l = append(Ladder{{Signal: syscall.SIGWINCH, Wait: graceful}}, l...)
	}
	return l
}
