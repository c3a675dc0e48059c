package proc

import (
	"context"
	"fmt"
	"time"
)

// pollInterval is how often PollUntil asks again.
const pollInterval = 20 * time.Millisecond

// PollUntil calls done every pollInterval until it reports true, returns an
// error, ctx ends, or within passes (an error saying how long it waited).
func PollUntil(ctx context.Context, within time.Duration, done func() (bool, error)) error {
	return PollEvery(ctx, within, pollInterval, done)
}

// PollEvery is PollUntil asking every interval.
func PollEvery(ctx context.Context, within, interval time.Duration, done func() (bool, error)) error {
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		ok, err := done()
		if ok || err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("still not so after %s", within)
		case <-tick.C:
		}
	}
}
