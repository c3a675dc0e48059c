//go:build linux

package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/safe-restart/safe-restart/internal/nstest"
)

// benchEnv turns TestBenchSystemdRestart on (make bench-systemd).
const benchEnv = "SAFE_RESTART_BENCH_SYSTEMD"

// TestBenchSystemdRestart is a benchmark, not a test (make bench-systemd;
// it asserts nothing about time): on a real systemd running Debian's
// apache2.service, it restarts Apache with `safe-restart restart apache2`
// and with the naive `systemctl restart apache2`, in turn, while a prober
// connects to port 80 every 2 ms, and prints for each method the
// connections refused, the longest time without an answer, and how long
// the command took: medians, minimum and maximum of the rounds.
func TestBenchSystemdRestart(t *testing.T) {
	if os.Getenv(benchEnv) == "" {
		t.Skip("a benchmark: make bench-systemd runs it")
	}
	s := systemdServers[0]
	nstest.RequireBinaries(t, s.binary, "systemctl", "nsenter", "/lib/systemd/systemd")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	rounds, err := strconv.Atoi(os.Getenv(benchEnv))
	if err != nil || rounds < 1 {
		rounds = 5
	}
	h, _ := s.started(t)
	methods := []struct{ name, command string }{
		{"safe-restart restart apache2", "/usr/local/bin/safe-restart restart apache2 --log-level error"},
		{"safe-restart restart apache2 --no-trial", "/usr/local/bin/safe-restart restart apache2 --log-level error --no-trial"},
		{"systemctl restart apache2 (naive)", "systemctl restart apache2"},
	}
	results := make([][]probeResult, len(methods))
	for range rounds {
		for i, m := range methods {
			// systemd refuses a sixth start within 10 s (StartLimitBurst=):
			// the rounds are quicker than any deploy, so its count is reset.
			h.MustRun(t, "systemctl", "reset-failed", s.unit)
			r := probeDuring(t, func() { h.MustRun(t, strings.Fields(m.command)...) })
			s.model(t, h)
			results[i] = append(results[i], r)
		}
	}
	fmt.Printf("%d rounds, methods in turn; a prober connects to 127.0.0.1:80 every 2 ms (median [min-max])\n", rounds)
	fmt.Printf("%-42s %-16s %-20s %s\n", "method", "refused", "longest gap (ms)", "took (ms)")
	for i, m := range methods {
		fmt.Printf("%-42s %-16s %-20s %s\n", m.name, spread(results[i], func(r probeResult) int { return r.refused }),
			spread(results[i], func(r probeResult) int { return int(r.gap.Milliseconds()) }),
			spread(results[i], func(r probeResult) int { return int(r.took.Milliseconds()) }))
	}
}

// probeResult is what clients saw during one restart.
type probeResult struct {
	refused int
	gap     time.Duration // the longest time without a successful connect
	took    time.Duration // how long the command ran
}

// probeDuring runs act while a prober connects to 127.0.0.1:80 every 2 ms,
// from 200 ms before it until 200 ms after.
func probeDuring(t *testing.T, act func()) probeResult {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var r probeResult
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		last := time.Now()
		for ctx.Err() == nil {
			c, err := net.DialTimeout("tcp", "127.0.0.1:80", time.Second)
			if err != nil {
				r.refused++
			} else {
				c.Close()
				r.gap = max(r.gap, time.Since(last))
				last = time.Now()
			}
			time.Sleep(2 * time.Millisecond) // the probe rate
		}
	}()
	time.Sleep(200 * time.Millisecond) // a baseline of answers before the restart
	start := time.Now()
	act()
	took := time.Since(start)
	time.Sleep(200 * time.Millisecond) // answers after it
	cancel()
	wg.Wait()
	r.took = took
	return r
}

// spread formats the median, minimum and maximum of f over rs.
func spread(rs []probeResult, f func(probeResult) int) string {
	v := make([]int, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	return fmt.Sprintf("%d [%d-%d]", v[len(v)/2], v[0], v[len(v)-1])
}
