package proc

import (
	"context"
	"errors"
	"testing"
	"time"
)

// fakeClock is a Clock whose waits pass at once, moving its time on.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

// TestRetry: try is called at once and every interval until it is done
// (its error returned), or until the deadline (its last error, timed out),
// or until ctx ends; the wait before the deadline is cut to it; the
// interval is waited after each call, however long the call took (a slow
// check is never repeated back to back), or, paced as PollEvery asks, from
// the start of each call. No wall time passes.
func TestRetry(t *testing.T) {
	start := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	notYet, failed := errors.New("not yet"), errors.New("failed")
	for _, c := range []struct {
		name     string
		doneAt   int // the call that is done (0: never)
		doneErr  error
		cancel   bool
		takes    time.Duration // each call's own time
		paced    bool          // as PollEvery calls it
		calls    int
		timedOut bool
		err      error
		elapsed  time.Duration
	}{
		{name: "done at once", doneAt: 1, calls: 1},
		{name: "done with an error", doneAt: 3, doneErr: failed, calls: 3, err: failed, elapsed: 200 * time.Millisecond},
		{name: "deadline", calls: 11, timedOut: true, err: notYet, elapsed: time.Second},
		{name: "cancelled", cancel: true, calls: 1, timedOut: true, err: context.Canceled},
		{name: "slow calls", takes: 60 * time.Millisecond, calls: 7, timedOut: true, err: notYet, elapsed: 1020 * time.Millisecond},
		{name: "calls slower than the interval", takes: 150 * time.Millisecond, calls: 5, timedOut: true, err: notYet, elapsed: 1150 * time.Millisecond},
		{name: "paced slow calls", takes: 60 * time.Millisecond, paced: true, calls: 11, timedOut: true, err: notYet, elapsed: 1060 * time.Millisecond},
		{name: "paced calls slower than the interval", takes: 150 * time.Millisecond, paced: true, calls: 7, timedOut: true, err: notYet, elapsed: 1050 * time.Millisecond},
	} {
		clock := &fakeClock{now: start}
		ctx, cancel := context.WithCancel(context.Background())
		if c.cancel {
			cancel()
		}
		calls := 0
		timedOut, err := retry(ctx, clock, start.Add(time.Second), 100*time.Millisecond, c.paced, func() (bool, error) {
			calls++
			clock.now = clock.now.Add(c.takes)
			if calls == c.doneAt {
				return true, c.doneErr
			}
			return false, notYet
		})
		cancel()
		if calls != c.calls || timedOut != c.timedOut || !errors.Is(err, c.err) || (c.err == nil && err != nil) || clock.now.Sub(start) != c.elapsed {
			t.Errorf("%s: %d calls, timed out %v, %v, %s elapsed; want %d, %v, %v, %s",
				c.name, calls, timedOut, err, clock.now.Sub(start), c.calls, c.timedOut, c.err, c.elapsed)
		}
	}
}
