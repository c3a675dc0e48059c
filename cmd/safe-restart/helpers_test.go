package main

import (
	"errors"
	"io/fs"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/safe-restart/safe-restart/internal/apachetest"
	"github.com/safe-restart/safe-restart/ipcguard"
)

// countMasters counts the processes running srv's binary that were
// re-parented to this test, PID 1 of its namespace: masters.
func countMasters(t *testing.T, srv *apachetest.Server) int {
	t.Helper()
	return mastersOf(t, srv.Bin)
}

// mastersOf counts the masters running bin: its processes whose parent is
// PID 1 (this test, in its namespaces), where every master detaches to.
func mastersOf(t *testing.T, bin string) int {
	t.Helper()
	procs, err := ipcguard.ReadProcTable("/proc")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range procs.ByExe(bin) {
		if p.PPID == 1 && p.Alive() {
			n++
		}
	}
	return n
}

// clientLoad sends GET / with get (a test server's Get: a new connection
// each time) in a loop until the returned stop is called, which returns how
// many requests were served and how many failed (see load).
func clientLoad(t *testing.T, get func(path string) (int, string, error)) (stop func() (ok, failed int)) {
	t.Helper()
	return load(t, 1, func() bool {
		c, _, err := get("/")
		return err == nil && c == 200
	})
}

// load runs get in n goroutines until the returned stop is called,
// which returns how many succeeded and failed. It returns once a request
// succeeded: from then on requests are in flight.
func load(t *testing.T, n int, get func() bool) (stop func() (ok, failed int)) {
	t.Helper()
	var mu sync.Mutex
	var okN, failN int
	done, first := make(chan struct{}), make(chan struct{})
	var firstOnce sync.Once
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				r := get()
				mu.Lock()
				if r {
					firstOnce.Do(func() { close(first) })
					okN++
				} else {
					failN++
				}
				mu.Unlock()
			}
		}()
	}
	var once sync.Once
	stop = func() (int, int) {
		once.Do(func() { close(done); wg.Wait() })
		mu.Lock()
		defer mu.Unlock()
		return okN, failN
	}
	t.Cleanup(func() { stop() })
	select {
	case <-first:
	case <-time.After(20 * time.Second):
		t.Fatal("the client load served no request")
	}
	return stop
}

// readFile returns the file's content, "" when it does not exist.
func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}
