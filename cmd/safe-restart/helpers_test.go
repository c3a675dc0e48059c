package main

import (
	"testing"

	"github.com/safe-restart/safe-restart/internal/apachetest"
	"github.com/safe-restart/safe-restart/ipcguard"
)

// countMasters counts the processes running srv's binary that were
// re-parented to this test, PID 1 of its namespace: masters.
func countMasters(t *testing.T, srv *apachetest.Server) int {
	t.Helper()
	procs, err := ipcguard.ReadProcTable("/proc")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range procs.ByExe(srv.Bin) {
		if p.PPID == 1 {
			n++
		}
	}
	return n
}

// clientLoad sends GET / with get (a test server's Get: a new connection
// each time) in a loop until the returned stop is called, which returns how
// many requests were served and how many failed. The loop never blocks the
// test, even after a Fatalf (stop is also registered as a cleanup).
func clientLoad(t *testing.T, get func(path string) (int, string, error)) (stop func() (ok, failed int)) {
	done := make(chan struct{})
	result := make(chan [2]int, 1)
	go func() {
		var n [2]int
		for {
			select {
			case <-done:
				result <- n
				return
			default:
			}
			if c, _, err := get("/"); err == nil && c == 200 {
				n[0]++
			} else {
				n[1]++
			}
		}
	}()
	stopped := false
	stop = func() (int, int) {
		if !stopped {
			stopped = true
			close(done)
		}
		n := <-result
		result <- n
		return n[0], n[1]
	}
	t.Cleanup(func() { stop() })
	return stop
}
