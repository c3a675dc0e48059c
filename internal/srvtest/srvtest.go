//go:build linux

package srvtest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/safe-restart/safe-restart/internal/proctest"
	"github.com/safe-restart/safe-restart/ipcguard"
)

// FreePorts returns n distinct free 127.0.0.1 addresses ("127.0.0.1:port")
// by binding port 0 and closing. Inside nstest's network namespace nothing
// else can take them meanwhile.
func FreePorts(t *testing.T, n int) []string {
	t.Helper()
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	var out []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("srvtest: free port: %v", err)
		}
		lns = append(lns, l)
		out = append(out, l.Addr().String())
	}
	return out
}

// FreeAddr returns one free 127.0.0.1 address (see FreePorts).
func FreeAddr(t *testing.T) string {
	t.Helper()
	return FreePorts(t, 1)[0]
}

// Fetch GETs url through tr with a 5s timeout and returns the status code
// and the body. It closes tr's idle connections when done.
func Fetch(tr *http.Transport, url string) (int, string, error) {
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// Get fetches path over plain HTTP from addr ("host:port"), without
// keep-alive.
func Get(addr, path string) (int, string, error) {
	return Fetch(&http.Transport{DisableKeepAlives: true}, "http://"+addr+path)
}

// ReadPIDFile returns the pid a pidfile holds (surrounding white space
// allowed).
func ReadPIDFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("pidfile %s: %w", path, err)
	}
	return pid, nil
}

// PID returns the pid in the pidfile, or 0 if it cannot be read.
func PID(path string) int {
	pid, _ := ReadPIDFile(path)
	return pid
}

// ReadText returns the current content of a file (a log), "" if it cannot
// be read.
func ReadText(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// WorldReadableTempDir returns t.TempDir() with it and its parent made
// 0755 (t.TempDir's directories are 0700), so that a server's workers
// running as www-data can reach the files in it.
func WorldReadableTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatalf("srvtest: %v", err)
		}
	}
	return dir
}

// KillMaster9 SIGKILLs master (through a pidfd), waits until it has exited
// and reaps it if it is this process's child (as inside nstest, where a
// daemonized master is re-parented to the test process). Its children are
// left running, orphaned. It fails the test if any step fails.
func KillMaster9(t *testing.T, master proctest.Proc) {
	t.Helper()
	if err := master.Kill(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatalf("KillMaster9 %v: %v", master, err)
	}
	if err := master.Reap(); err != nil {
		t.Fatalf("KillMaster9 %v: %v", master, err)
	}
}

// KillAll SIGKILLs every process procs lists, waits (on pidfds, until
// deadline) until each has exited and reaps those that are this process's
// children; it repeats while procs lists any (at most 10 rounds), so that a
// process forked meanwhile is caught too. Then it reaps the exited children
// of this process whose comm is comm (masters that exited on their own,
// such as the old pid of a re-exec). It returns every error but ErrGone,
// and one naming the processes still alive at the end.
//
// procs must list only the test's own processes: inside nstest, the live
// processes of the server's binary.
func KillAll(procs func() []ipcguard.Proc, comm string, deadline time.Time) error {
	var errs []error
	for round := 0; round < 10; round++ {
		ps := procs()
		if len(ps) == 0 {
			break
		}
		for _, p := range ps {
			errs = append(errs, proctest.Of(p).Signal(syscall.SIGKILL))
		}
		for _, p := range ps {
			errs = append(errs, proctest.Of(p).WaitExited(deadline), proctest.Of(p).Reap())
		}
	}
	for _, p := range proctest.ChildrenOf(os.Getpid()) {
		if !p.Alive() && p.Comm == comm {
			errs = append(errs, proctest.Of(p).Reap())
		}
	}
	if left := procs(); len(left) > 0 {
		errs = append(errs, fmt.Errorf("still alive: %+v", left))
	}
	errs = slices.DeleteFunc(errs, func(e error) bool { return e == nil || errors.Is(e, proctest.ErrGone) })
	return errors.Join(errs...)
}
