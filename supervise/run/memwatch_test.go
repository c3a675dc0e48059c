package run

import (
	"context"
	"errors"
	"os"
	"sync"
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

// TestMemoryWatchRecyclesAgainAfterTheRecycleFreed: a tree that went
// under Max after a recycle and then grew over it again (a fast leak in
// the workers) is recycled again, not restarted: the recycle worked.
func TestMemoryWatchRecyclesAgainAfterTheRecycleFreed(t *testing.T) {
	const max = 100
	var mu sync.Mutex
	script := []int64{200, 50, 200} // over; under after the recycle; over again (and on)
	measure := func(string, ipcguard.Proc) (int64, int, error) {
		mu.Lock()
		defer mu.Unlock()
		v := script[0]
		if len(script) > 1 {
			script = script[1:]
		}
		return v, 3, nil
	}
	f := &Foreground{o: ForegroundOptions{ProcRoot: "/proc", Log: zerolog.Nop()}, reqs: make(chan Request)}
	f.cur.Store(&Generation{N: 1, Master: ipcguard.Proc{PID: 1}, Serving: true})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		_ = MemoryWatch{F: f, Max: max, Every: 5 * time.Millisecond, measure: measure}.Run(ctx)
		close(done)
	}()
	defer func() { cancel(); <-done }()
	for i, want := range []Action{ActRecycle, ActRecycle} {
		select {
		case r := <-f.reqs:
			r.reply <- nil
			if r.Action != want {
				t.Fatalf("request %d: %s (%s), want %s", i+1, r.Action, r.Reason, want)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("no request %d from the memory watchdog", i+1)
		}
	}
}
