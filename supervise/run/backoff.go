package run

import (
	"cmp"
	"fmt"
	"time"

	"github.com/safe-restart/safe-restart/supervise/proc"
)

// RestartPolicy is how the foreground supervisor answers a child that
// exited on its own: whether to start it again, after how long, and how
// many times in a row.
type RestartPolicy struct {
	// OnSuccess restarts a child that exited with status 0 too; by default
	// (on-failure) a clean exit ends the supervisor with status 0.
	OnSuccess bool
	// Backoff is the delay before the first restart; each further crash in
	// a row doubles it, up to MaxBackoff. 0 means 1 s.
	Backoff time.Duration
	// MaxBackoff caps the delay; 0 means 1 minute.
	MaxBackoff time.Duration
	// MaxRestarts is how many crash restarts in a row are tried before
	// the supervisor gives up (exiting with the child's status); 0 means
	// no limit.
	MaxRestarts int
	// StableAfter is how long a child must have run for its crash to start
	// a new series (the count and the delay start again); 0 means 10 times
	// MaxBackoff's default, 10 minutes.
	StableAfter time.Duration
}

// withDefaults fills in the zero fields.
func (p RestartPolicy) withDefaults() RestartPolicy {
	p.Backoff = cmp.Or(p.Backoff, time.Second)
	p.MaxBackoff = max(cmp.Or(p.MaxBackoff, time.Minute), p.Backoff)
	p.StableAfter = cmp.Or(p.StableAfter, 10*time.Minute)
	return p
}

// Validate refuses negative durations and limits.
func (p RestartPolicy) Validate() error {
	if p.Backoff < 0 || p.MaxBackoff < 0 || p.StableAfter < 0 || p.MaxRestarts < 0 {
		return fmt.Errorf("restart policy: negative value in %+v", p)
	}
	return nil
}

// delay is the wait before restart n of a series (n = 1 for the first):
// Backoff × 2^(n-1), capped at MaxBackoff.
func (p RestartPolicy) delay(n int) time.Duration {
	p = p.withDefaults()
	d := p.Backoff
	for i := 1; i < n && d < p.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, p.MaxBackoff)
}

// wants reports whether a child that exited with st after running for
// ran should be restarted, given crashes (the restarts of the current
// series so far, before this one): it returns the series count including
// this crash, and why not when it should not. crashed says it was a crash
// whatever st is (a start that never served and was stopped gracefully
// exits 0).
func (p RestartPolicy) wants(st proc.ExitStatus, ran time.Duration, crashes int, crashed bool) (int, string) {
	p = p.withDefaults()
	if st.Success() && !p.OnSuccess && !crashed {
		return crashes, "the child exited cleanly (restart policy on-failure)"
	}
	if ran >= p.StableAfter {
		crashes = 0 // it ran long enough: a new series
	}
	crashes++
	if p.MaxRestarts > 0 && crashes > p.MaxRestarts {
		return crashes, fmt.Sprintf("the child exited %d times in a row (limit --max-restarts %d)", crashes, p.MaxRestarts)
	}
	return crashes, ""
}
