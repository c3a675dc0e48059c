package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testCgroup is a child of this test's cgroup v1 group of one controller
// (memory, pids); the cleanup removes it once its processes are gone, so
// create it before the server whose processes it will hold.
type testCgroup struct{ dir string }

// newCgroup creates a child of this process's group of the v1 controller,
// whose control file (e.g. "memory.limit_in_bytes", "pids.max") must
// exist in it. No such controller skips the test, or fails it with
// CI=true.
func newCgroup(t *testing.T, controller, control string) testCgroup {
	t.Helper()
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	var own string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.SplitN(line, ":", 3); len(f) == 3 && f[1] == controller {
			own = f[2]
		}
	}
	base := filepath.Join("/sys/fs/cgroup", controller, own)
	if own == "" || !fileExists(filepath.Join(base, "cgroup.procs")) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no cgroup v1 %s controller for this process (%q)", controller, own)
		}
		t.Skipf("no cgroup v1 %s controller for this process (%q)", controller, own)
	}
	cg := testCgroup{dir: filepath.Join(base, fmt.Sprintf("safe-restart-test-%d-%d", os.Getppid(), time.Now().UnixNano()))}
	if err := os.Mkdir(cg.dir, 0o755); err != nil {
		t.Fatalf("create a %s cgroup: %v", controller, err)
	}
	t.Cleanup(func() {
		deadline := time.Now().Add(20 * time.Second)
		for {
			err := os.Remove(cg.dir)
			if err == nil || errors.Is(err, fs.ErrNotExist) || time.Now().After(deadline) {
				if err != nil && !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("remove %s: %v", cg.dir, err)
				}
				return
			}
			time.Sleep(50 * time.Millisecond) // processes still leaving the group
		}
	})
	if !fileExists(filepath.Join(cg.dir, control)) {
		t.Fatalf("%s has no %s", cg.dir, control)
	}
	return cg
}

// newMemCgroup is a memory cgroup limited to limit bytes.
func newMemCgroup(t *testing.T, limit int64) testCgroup {
	t.Helper()
	cg := newCgroup(t, "memory", "memory.limit_in_bytes")
	cg.write(t, "memory.limit_in_bytes", strconv.FormatInt(limit, 10))
	return cg
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func (c testCgroup) write(t *testing.T, name, v string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(c.dir, name), []byte(v), 0o644); err != nil {
		t.Fatalf("write %s: %v", name, err)
	}
}

// enter moves the processes into the group (cgroup.procs).
func (c testCgroup) enter(t *testing.T, pids ...int) {
	t.Helper()
	for _, pid := range pids {
		c.write(t, "cgroup.procs", strconv.Itoa(pid))
	}
}

// value reads a number from a file of the group ("memory.failcnt"), or
// a keyed line of one ("memory.oom_control", "oom_kill").
func (c testCgroup) value(t *testing.T, name, key string) int64 {
	t.Helper()
	text := readFile(t, filepath.Join(c.dir, name))
	for _, line := range strings.Split(text, "\n") {
		if key != "" {
			v, ok := strings.CutPrefix(line, key+" ")
			if !ok {
				continue
			}
			line = v
		}
		n, err := strconv.ParseInt(strings.TrimSpace(line), 10, 64)
		if err != nil {
			t.Fatalf("%s: %q", name, text)
		}
		return n
	}
	t.Fatalf("%s: no %q in %q", name, key, text)
	return 0
}
