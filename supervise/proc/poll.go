package proc

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Clock is the time a poll reads and waits on: Wall, or a fake in tests.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// Wall is the machine's clock.
var Wall Clock = wallClock{}

type wallClock struct{}

func (wallClock) Now() time.Time                         { return time.Now() }
func (wallClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Retry calls try at once, then again an interval after each call ends
// (the call's own time does not count: a slow check, such as a health
// check of a server still starting, is not repeated back to back), as
// clock counts it, until try reports done, ctx ends, or clock passes
// deadline (one last call falls on it). When try is
// done, timedOut is false and err is try's. Otherwise timedOut is true and
// err joins the error of try's last call (nil when it had none) and ctx's
// (nil when the deadline passed first): the caller says what was waited
// for. The operations' verification loops go through it.
func Retry(ctx context.Context, clock Clock, deadline time.Time, interval time.Duration, try func() (done bool, err error)) (timedOut bool, err error) {
	return retry(ctx, clock, deadline, interval, false, try)
}

// retry is Retry; paced, it calls every interval from the start of the
// last call instead (at once after a call that took longer), as a ticker
// would (PollEvery).
func retry(ctx context.Context, clock Clock, deadline time.Time, interval time.Duration, paced bool, try func() (bool, error)) (bool, error) {
	for {
		began := clock.Now()
		done, err := try()
		if done {
			return false, err
		}
		now := clock.Now()
		if ctx.Err() != nil || !now.Before(deadline) {
			return true, errors.Join(err, ctx.Err())
		}
		wait := interval
		if paced {
			wait = max(interval-now.Sub(began), 0)
		}
		select {
		case <-ctx.Done():
			return true, errors.Join(err, ctx.Err())
		case <-clock.After(min(wait, deadline.Sub(now))):
		}
	}
}

// pollInterval is how often PollUntil asks again.
const pollInterval = 20 * time.Millisecond

// PollUntil calls done every pollInterval until it reports true, returns an
// error, ctx ends (its error), or within passes (an error saying how long
// it waited).
func PollUntil(ctx context.Context, within time.Duration, done func() (bool, error)) error {
	return PollEvery(ctx, within, pollInterval, done)
}

// PollEvery is PollUntil asking every interval, as a ticker would (see
// retry).
func PollEvery(ctx context.Context, within, interval time.Duration, done func() (bool, error)) error {
	timedOut, err := retry(ctx, Wall, Wall.Now().Add(within), interval, true, func() (bool, error) {
		ok, err := done()
		return ok || err != nil, err
	})
	switch {
	case !timedOut:
		return err
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return fmt.Errorf("still not so after %s", within)
}
