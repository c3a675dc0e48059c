//go:build linux

package ipcguard

import (
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestReadProcLive reads this process, a zombie child and a reaped one.
func TestReadProcLive(t *testing.T) {
	self, err := ReadProc("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if !self.Alive() || self.PPID != os.Getppid() || self.Exe != exe || self.UID != uint32(os.Getuid()) {
		t.Errorf("self = %+v; want alive, PPID %d, Exe %q, UID %d", self, os.Getppid(), exe, os.Getuid())
	}
	tab, err := ReadProcTable("/proc")
	if err != nil {
		t.Fatal(err)
	}
	// The boot time may move by a second between reads (it is derived
	// from the wall clock), so compare identity and Start to the second.
	if p := tab.ByPID[os.Getpid()]; p.Key() != self.Key() || p.Start.Sub(self.Start).Abs() > time.Second {
		t.Errorf("ReadProcTable has %+v, ReadProc %+v", p, self)
	}

	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Skip("cannot run true:", err)
	}
	pid := cmd.Process.Pid
	// Wait for the exit but leave the child a zombie (WNOWAIT).
	var info unix.Siginfo
	for {
		err = unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		t.Fatalf("waitid %d: %v", pid, err)
	}
	z, err := ReadProc("/proc", pid)
	if err != nil || z.Alive() || z.State != 'Z' || z.PPID != os.Getpid() || z.Exe != "" {
		t.Errorf("zombie child: %+v, %v; want state Z, not alive, parent %d, no exe", z, err, os.Getpid())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if p, err := ReadProc("/proc", pid); !errors.Is(err, ErrNoProcess) {
		// The pid could have been reused at once; then it is someone else.
		if err != nil || p.Key() == z.Key() {
			t.Errorf("reaped child: %+v, %v; want ErrNoProcess", p, err)
		}
	}
}
