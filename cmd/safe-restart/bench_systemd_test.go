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
)

// benchEnv turns TestBenchSystemdRestart on (make bench-systemd).
const benchEnv = "SAFE_RESTART_BENCH_SYSTEMD"

// TestBenchSystemdRestart is a benchmark, not a test (make bench-systemd;
// it asserts nothing about time): on a real systemd running each server's
// Debian unit (Apache, nginx, php-fpm), it restarts the server with
// `safe-restart restart` (with and without the trial start) and with the
// naive `systemctl restart`, in turn, while a prober connects to it every
// 2 ms (port 80; php-fpm's pool socket), and prints for each method the
// connections refused, the longest time without an answer, and how long
// the command took: medians, minimum and maximum of the rounds.
func TestBenchSystemdRestart(t *testing.T) {
	if os.Getenv(benchEnv) == "" {
		t.Skip("a benchmark: make bench-systemd runs it")
	}
	rounds, err := strconv.Atoi(os.Getenv(benchEnv))
	if err != nil || rounds < 1 {
		rounds = 5
	}
	eachServer(t, nil, func(t *testing.T, s systemdServer) {
		h, _ := s.started(t)
		dial := func() (net.Conn, error) { return net.DialTimeout("tcp", "127.0.0.1:80", time.Second) }
		if s.tmpfiles != "" { // php-fpm: its pool socket
			dial = func() (net.Conn, error) {
				return net.DialTimeout("unix", h.Root()+"/run/php/php8.2-fpm.sock", time.Second)
			}
		}
		sr := "/usr/bin/safe-restart restart " + s.service + " --log-level error"
		methods := []struct{ name, command string }{
			{"safe-restart restart " + s.service, sr},
			{"safe-restart restart " + s.service + " --no-trial", sr + " --no-trial"},
			{"systemctl restart " + s.unit + " (naive)", "systemctl restart " + s.unit},
		}
		results := make([][]probeResult, len(methods))
		for range rounds {
			for i, m := range methods {
				// systemd refuses a sixth start within 10 s (StartLimitBurst=):
				// the rounds are quicker than any deploy, so its count is reset.
				h.MustRun(t, "systemctl", "reset-failed", s.unit)
				r := probeDuring(t, dial, func() { h.MustRun(t, strings.Fields(m.command)...) })
				s.model(t, h)
				results[i] = append(results[i], r)
			}
		}
		fmt.Printf("%s: %d rounds, methods in turn; a prober connects every 2 ms (median [min-max])\n", s.unit, rounds)
		fmt.Printf("%-50s %-16s %-20s %s\n", "method", "refused", "longest gap (ms)", "took (ms)")
		for i, m := range methods {
			fmt.Printf("%-50s %-16s %-20s %s\n", m.name, spread(results[i], func(r probeResult) int { return r.refused }),
				spread(results[i], func(r probeResult) int { return int(r.gap.Milliseconds()) }),
				spread(results[i], func(r probeResult) int { return int(r.took.Milliseconds()) }))
		}
	})
}

// probeResult is what clients saw during one restart.
type probeResult struct {
	refused int
	gap     time.Duration // the longest time without a successful connect
	took    time.Duration // how long the command ran
}

// probeDuring runs act while a prober connects (dial) every 2 ms, from
// 200 ms before it until 200 ms after.
func probeDuring(t *testing.T, dial func() (net.Conn, error), act func()) probeResult {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var r probeResult
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		last := time.Now()
		for ctx.Err() == nil {
			c, err := dial()
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
