package proc

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/internal/proctest"
	"github.com/safe-restart/safe-restart/ipcguard"
)

// startHelper starts this test binary as the helper name (see
// proctest.StartHelper).
func startHelper(t *testing.T, name string) (*exec.Cmd, ipcguard.Proc) {
	t.Helper()
	return proctest.StartHelper(t, os.Args[0], name, nil)
}

// TestLadderEscalatesOnlyAfterTheWait: a process that ignores TERM is
// killed only by the next step, after its wait, and the report says so.
func TestLadderEscalatesOnlyAfterTheWait(t *testing.T) {
	_, p := startHelper(t, "ignore-term")
	ladder := Ladder{{Signal: syscall.SIGTERM, Wait: 300 * time.Millisecond}, {Signal: syscall.SIGKILL, Wait: 10 * time.Second, All: true}}
	reports, err := ladder.Run(context.Background(), LadderRun{Master: p, Members: []ipcguard.Proc{p}, Log: zerolog.New(zerolog.NewTestWriter(t))})
	if err != nil {
		t.Fatal(err)
	}
	if len(reports) != 2 || len(reports[0].Survivors) != 1 || reports[0].Survivors[0] != p.PID || len(reports[1].Survivors) != 0 {
		t.Fatalf("reports %+v: want TERM leaving pid %d, then KILL leaving none", reports, p.PID)
	}
	if reports[0].Waited < 300*time.Millisecond {
		t.Errorf("escalated after %s, before the step's 300ms wait", reports[0].Waited)
	}
	if SameAlive("/proc", p) {
		t.Errorf("pid %d still alive after the ladder", p.PID)
	}
}

// TestLadderStopsAtTheFirstStepThatWorks: a process that exits on TERM is
// never sent KILL.
func TestLadderStopsAtTheFirstStepThatWorks(t *testing.T) {
	_, p := startHelper(t, "block")
	ladder := Ladder{{Signal: syscall.SIGTERM, Wait: 20 * time.Second}, {Signal: syscall.SIGKILL, Wait: 5 * time.Second, All: true}}
	reports, err := ladder.Run(context.Background(), LadderRun{Master: p, Members: []ipcguard.Proc{p}, Log: zerolog.New(zerolog.NewTestWriter(t))})
	if err != nil || len(reports) != 1 || len(reports[0].Survivors) != 0 {
		t.Fatalf("reports %+v, %v: want one TERM step and no survivors", reports, err)
	}
}

// TestSignalRefusesAReusedPID: an identity whose start time does not match
// the live pid is never signalled.
func TestSignalRefusesAReusedPID(t *testing.T) {
	_, p := startHelper(t, "block")
	other := p
	other.StartTicks++
	if err := SignalProc("/proc", other, syscall.SIGKILL); !errors.Is(err, ErrPIDReused) {
		t.Fatalf("signal with a wrong start time: %v, want ErrPIDReused", err)
	}
	if !SameAlive("/proc", p) {
		t.Fatalf("pid %d was signalled", p.PID)
	}
}

func TestFromPIDFile(t *testing.T) {
	// The helper runs a copy of the test binary: its parent, this test,
	// does not run the helper's binary, as a master's parent does not.
	exe := proctest.CopySelf(t, t.TempDir())
	cmd, p := proctest.StartHelper(t, exe, "block", nil)
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	good := write("good.pid", strconv.Itoa(p.PID)+"\n")
	if got, err := FromPIDFile("/proc", good, exe); err != nil || got.PID != p.PID || got.StartTicks != p.StartTicks {
		t.Fatalf("FromPIDFile = %+v, %v; want pid %d", got, err, p.PID)
	}
	if _, err := FromPIDFile("/proc", good, "/usr/sbin/apache2"); !errors.Is(err, ErrForeignProcess) {
		t.Errorf("another program: %v, want ErrForeignProcess", err)
	}
	old := write("old.pid", strconv.Itoa(p.PID))
	past := p.Start.Add(-time.Hour)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	if _, err := FromPIDFile("/proc", old, exe); !errors.Is(err, ErrPIDReused) {
		t.Errorf("pidfile older than its process: %v, want ErrPIDReused", err)
	}
	for _, bad := range []string{"", "abc", "-4", "12 13", strconv.Itoa(p.PID) + strings.Repeat(" ", maxPIDFile)} {
		if _, err := FromPIDFile("/proc", write("bad.pid", bad), exe); !errors.Is(err, ErrBadPIDFile) {
			t.Errorf("pidfile %q: %v, want ErrBadPIDFile", bad, err)
		}
	}
	// A worker: a process whose parent runs the same binary (here the
	// test itself, running the helper's binary directly).
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	_, worker := startHelper(t, "block")
	_, err = FromPIDFile("/proc", write("worker.pid", strconv.Itoa(worker.PID)), self)
	if !errors.Is(err, ErrForeignProcess) || !strings.Contains(err.Error(), "a worker, not the master") {
		t.Errorf("a worker's pid: %v, want ErrForeignProcess naming a worker", err)
	}
	// A child that leads its own session is a master that detached (a
	// php-fpm --daemonize whose starter still waits). (The other
	// exception, nginx's binary upgrade, is tested on a real nginx:
	// TestSystemdHostNginxUpgradeFails and TestSystemdHost.)
	_, detached := proctest.StartHelper(t, self, "block", &syscall.SysProcAttr{Setsid: true})
	if got, err := FromPIDFile("/proc", write("detached.pid", strconv.Itoa(detached.PID)), self); err != nil || got.PID != detached.PID {
		t.Errorf("a detached master whose parent runs the binary: %+v, %v; want pid %d", got, err, detached.PID)
	}
	// The process exits and is reaped: its pidfile is stale.
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if _, err := FromPIDFile("/proc", good, exe); !errors.Is(err, ErrStalePIDFile) {
		t.Errorf("dead pid: %v, want ErrStalePIDFile", err)
	}
}

// TestReadPIDFile: a pidfile that is not a regular file (a FIFO, whose
// open would block, a device that never ends, a directory) is refused at
// once as malformed, naming what it is; so is a regular file longer than
// a pid.
func TestReadPIDFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.pid")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(dir, "zero.pid")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	long := filepath.Join(dir, "long.pid")
	if err := os.WriteFile(long, []byte("1"+strings.Repeat("0", 1<<20)), 0o644); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		fifo: "is a named pipe (FIFO)", zero: "is a character device", dir: "is a directory", long: "holds more than 64 bytes",
	} {
		done := make(chan error, 1)
		go func() { _, _, err := ReadPIDFile(path); done <- err }()
		select {
		case err := <-done:
			if !errors.Is(err, ErrBadPIDFile) || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: %v; want ErrBadPIDFile saying %q", path, err, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: still reading after 10 s", path)
		}
	}
	if _, _, err := ReadPIDFile(filepath.Join(dir, "missing.pid")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing pidfile: %v, want fs.ErrNotExist", err)
	}
}
