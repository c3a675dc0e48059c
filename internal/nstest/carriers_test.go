//go:build linux

package nstest

import (
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"
)

func TestKillCarriers(t *testing.T) {
	RequireBinaries(t, "sleep")
	kv := "NSTEST_CARRIER_TOKEN=" + newToken()
	cmd := exec.Command("sleep", "1000")
	cmd.Env = append(os.Environ(), kv)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	other := exec.Command("sleep", "1000")
	other.Env = append(os.Environ(), kv+"x")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Process.Kill(); _ = other.Wait() })

	if got := killCarriers(kv); !slices.Equal(got, []int{cmd.Process.Pid}) {
		t.Errorf("killCarriers = %v, want [%d]", got, cmd.Process.Pid)
	}
	err := cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Errorf("carrier ended with %v, want SIGKILL", err)
	}
	if got := killCarriers(kv); len(got) != 0 {
		t.Errorf("after the kill: %v", got)
	}
}
