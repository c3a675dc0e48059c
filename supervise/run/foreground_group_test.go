package run

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
)

// TestGroupMembersOnlyDescendants: a process group is the previous
// generation's only among this process's descendants. A child of ours
// leading its group is a member; a group leader that is no descendant
// (started with setsid by a shell that exited: re-parented away), as a
// reused pid leading an unrelated group would be, is not, though its pgid
// is the number asked about.
func TestGroupMembersOnlyDescendants(t *testing.T) {
	f, err := NewForeground(ForegroundOptions{Argv: []string{"true"}})
	if err != nil {
		t.Fatal(err)
	}
	own := exec.Command("sleep", "300")
	own.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := own.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = own.Process.Kill(); _ = own.Wait() })
	out, err := exec.Command("sh", "-c", "setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $!").Output()
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("sh printed %q", out)
	}
	t.Cleanup(func() { _ = syscall.Kill(foreign, syscall.SIGKILL) })
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, err := ipcguard.ReadProc("/proc", foreign)
		if err != nil {
			t.Fatal(err)
		}
		g, err := proc.ReadPGID("/proc", foreign)
		if err == nil && g == foreign && strings.HasSuffix(p.Exe, "/sleep") {
			if p.PPID == os.Getpid() {
				t.Skip("this test process is a subreaper: every orphan descends from it")
			}
			break // setsid has run and exec'd sleep; the sh is gone
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d: pgid %d, exe %s; want the leader of its own group running sleep", foreign, g, p.Exe)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := proc.PIDs(f.groupMembers(own.Process.Pid)); len(got) != 1 || got[0] != own.Process.Pid {
		t.Errorf("members of our child's group: %v, want [%d]", got, own.Process.Pid)
	}
	if got := proc.PIDs(f.groupMembers(foreign)); len(got) != 0 {
		t.Errorf("members of the group of %d, no descendant of ours: %v, want none", foreign, got)
	}
}
