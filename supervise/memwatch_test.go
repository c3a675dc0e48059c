package supervise

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/ipcguard"
)

// TestMemoryWatchRestartsOnlyAfterARecycle: a tree over Max (this test
// process, over 1 byte) is recycled; a recycle that was not carried out
// (refused) is asked for again, never answered by a restart; only one
// carried out makes the next verdict over Max a restart.
func TestMemoryWatchRestartsOnlyAfterARecycle(t *testing.T) {
	self, err := ipcguard.ReadProc("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	f := &Foreground{o: ForegroundOptions{ProcRoot: "/proc", Log: zerolog.Nop()}, reqs: make(chan Request)}
	f.cur.Store(&Generation{N: 1, Master: self, Serving: true})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = MemoryWatch{F: f, Max: 1, Every: 5 * time.Millisecond}.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	next := func(answer error) Action {
		t.Helper()
		select {
		case r := <-f.reqs:
			r.reply <- answer
			return r.Action
		case <-time.After(20 * time.Second):
			t.Fatal("no request from the memory watchdog")
		}
		return 0
	}
	if a := next(errors.New("refused: the config test fails")); a != ActRecycle {
		t.Fatalf("first request %s, want a recycle", a)
	}
	if a := next(nil); a != ActRecycle {
		t.Fatalf("after a refused recycle: %s, want a recycle again", a)
	}
	if a := next(nil); a != ActRestart {
		t.Fatalf("after a recycle carried out, still over Max: %s, want a restart", a)
	}
}
