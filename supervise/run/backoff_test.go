package run

import (
	"testing"
	"time"

	"github.com/safe-restart/safe-restart/supervise/proc"
)

func TestRestartPolicy(t *testing.T) {
	p := RestartPolicy{Backoff: 100 * time.Millisecond, MaxBackoff: time.Second, MaxRestarts: 3, StableAfter: time.Minute}
	var got []time.Duration
	for n := 1; n <= 6; n++ {
		got = append(got, p.delay(n))
	}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("delays %v, want %v ms", got, want)
		}
	}
	crash := proc.ExitStatus{Code: 1}
	n, why := 0, ""
	for i := 0; i < 3; i++ {
		if n, why = p.wants(crash, time.Second, n, false); why != "" {
			t.Fatalf("crash %d: gave up early: %s", i+1, why)
		}
	}
	if n, why = p.wants(crash, time.Second, n, false); n != 4 || why == "" {
		t.Errorf("4th crash in a row: n %d, why %q; want a refusal", n, why)
	}
	if n, why = p.wants(crash, 2*time.Minute, 3, false); n != 1 || why != "" {
		t.Errorf("a crash after a stable run: n %d, why %q; want a new series", n, why)
	}
	if _, why = p.wants(proc.ExitStatus{}, time.Second, 0, false); why == "" {
		t.Error("a clean exit under on-failure is restarted")
	}
	if n, why = p.wants(proc.ExitStatus{}, time.Second, 0, true); n != 1 || why != "" {
		t.Errorf("a failed start that exited 0 under on-failure: n %d, why %q; want a crash restarted", n, why)
	}
	if n, why = p.wants(proc.ExitStatus{}, time.Second, 3, true); n != 4 || why == "" {
		t.Errorf("a 4th failed start in a row: n %d, why %q; want the limit", n, why)
	}
	p.OnSuccess = true
	if _, why = p.wants(proc.ExitStatus{}, time.Second, 0, false); why != "" {
		t.Errorf("a clean exit under always: %s", why)
	}
}
