package supervise

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
)

func TestMemAvailable(t *testing.T) {
	root := t.TempDir()
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(root, "meminfo"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("MemTotal:        4000000 kB\nMemFree:          100000 kB\nMemAvailable:    2048 kB\n")
	if n, _, err := memAvailable(root); err != nil || n != 2048<<10 {
		t.Fatalf("memAvailable = %d, %v; want %d", n, err, 2048<<10)
	}
	for _, bad := range []string{"MemTotal: 1 kB\n", "MemAvailable: lots kB\n"} {
		write(bad)
		if _, _, err := memAvailable(root); !errors.Is(err, ipcguard.ErrMalformed) {
			t.Errorf("memAvailable of %q: %v, want ErrMalformed", bad, err)
		}
	}
}

// TestCgroupRoom: the least room under the limits of a cgroup and its
// ancestors, "max" meaning none.
func TestCgroupRoom(t *testing.T) {
	old := proc.CgroupRoot
	proc.CgroupRoot = t.TempDir()
	defer func() { proc.CgroupRoot = old }()
	set := func(dir, limit, current string) {
		t.Helper()
		d := filepath.Join(proc.CgroupRoot, dir)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, v := range map[string]string{"memory.max": limit, "memory.current": current} {
			if err := os.WriteFile(filepath.Join(d, name), []byte(v+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	set("a", "1000", "400")
	set("a/b", "max", "300")
	set("a/b/c", "900", "100")
	room, at, ok := cgroupRoom(filepath.Join(proc.CgroupRoot, "a/b/c"))
	if !ok || room != 600 || at != filepath.Join(proc.CgroupRoot, "a") {
		t.Fatalf("cgroupRoom = %d at %s (%v); want 600 at a", room, at, ok)
	}
	set("a", "max", "400")
	if room, at, ok = cgroupRoom(filepath.Join(proc.CgroupRoot, "a/b/c")); !ok || room != 800 {
		t.Fatalf("cgroupRoom = %d at %s (%v); want 800 at a/b/c", room, at, ok)
	}
	set("a/b/c", "max", "100")
	if _, _, ok = cgroupRoom(filepath.Join(proc.CgroupRoot, "a/b/c")); ok {
		t.Fatal("cgroupRoom found a limit where every level says max")
	}
}
