//go:build linux

package systemdtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/safe-restart/safe-restart/internal/nstest"
)

// TestBootKeepsHostTmp boots systemd, starts Debian's apache2.service in
// it, and checks what the package comment promises: the unit runs in the
// namespace's own cgroup tree, and this machine's /tmp (here the test's
// own temporary directory, which systemd-tmpfiles would have emptied) and
// fs.nr_open are untouched.
func TestBootKeepsHostTmp(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "systemctl", "nsenter", "/lib/systemd/systemd")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	canary := filepath.Join(t.TempDir(), "canary")
	if err := os.WriteFile(canary, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	nrOpen, err := os.ReadFile("/proc/sys/fs/nr_open")
	if err != nil {
		t.Fatal(err)
	}
	h := Boot(t, Options{Units: []string{"apache2.service"}})
	h.MustRun(t, "systemctl", "start", "apache2.service")
	u := h.Show(t, "apache2.service", "ActiveState", "MainPID", "ControlGroup")
	if u["ActiveState"] != "active" || u["MainPID"] == "0" || u["ControlGroup"] != "/system.slice/apache2.service" {
		t.Fatalf("apache2.service: %v", u)
	}
	if _, err := os.Stat(filepath.Join(h.CGroup, "system.slice", "apache2.service", "cgroup.procs")); err != nil {
		t.Errorf("the unit's cgroup is not below the namespace's: %v", err)
	}
	if out := h.MustRun(t, "cat", "/proc/1/comm"); strings.TrimSpace(out) != "systemd" {
		t.Errorf("PID 1 inside is %q", out)
	}
	if _, err := os.Stat(canary); err != nil {
		t.Errorf("the test's /tmp file is gone after the boot: %v", err)
	}
	if now, _ := os.ReadFile("/proc/sys/fs/nr_open"); string(now) != string(nrOpen) {
		t.Errorf("fs.nr_open changed from %s to %s", nrOpen, now)
	}
}
