//go:build linux

package systemdtest

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/safe-restart/safe-restart/internal/nstest"
)

// TestBootIsolated boots systemd, starts Debian's apache2.service in it,
// and checks what the package comment promises: the unit runs in the
// namespace's own cgroup tree; systemd's mounts of /run, /tmp, /var/tmp,
// /var/log and /dev are its own tmpfs, and every mount inherited from this
// machine, /proc/sys and /sys are read-only there, so this machine's /tmp
// (here the test's own temporary directory) is not even visible inside and
// stays; /dev/console inside is /dev/null; /dev/log on this machine is
// what it was, and fs.nr_open is unchanged.
func TestBootIsolated(t *testing.T) {
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
	devLog, devLogErr := os.Lstat("/dev/log")
	hostBefore, hostErr := os.ReadFile("/usr/bin/safe-restart")                         // this machine's, if it has one
	h := Boot(t, Options{Units: []string{"apache2.service"}, SafeRestart: "/bin/true"}) // private tmpfs on /run, /tmp, /var/tmp first: checked below
	if inside, err := os.ReadFile(h.Root() + "/usr/bin/safe-restart"); err != nil || !bytes.Contains(inside, []byte("/run/systemdtest/safe-restart.bin")) {
		t.Errorf("/usr/bin/safe-restart inside is %q (%v), want the wrapper of the installed one", inside, err)
	}
	if hostAfter, err := os.ReadFile("/usr/bin/safe-restart"); !bytes.Equal(hostAfter, hostBefore) || (err == nil) != (hostErr == nil) {
		t.Error("installing safe-restart inside changed this machine's /usr/bin/safe-restart")
	}
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

	mounts := topMounts(t, h.PID)
	for _, dir := range []string{"/run", "/tmp", "/var/tmp", "/var/log", "/dev"} {
		if m := mounts[dir]; m.fstype != "tmpfs" || m.readOnly {
			t.Errorf("%s inside is %+v, want its own writable tmpfs", dir, m)
		}
	}
	for dir, m := range mounts {
		// Its own mounts, and those below the fresh sysfs: the cgroup2 of
		// its cgroup namespace (systemd writes there), and this machine's
		// mounts that the fresh sysfs covers.
		own := dir == "/usr/bin"
		for _, p := range []string{"/run", "/tmp", "/var/tmp", "/var/log", "/dev", "/proc", "/sys"} {
			own = own || dir == p || strings.HasPrefix(dir, p+"/")
		}
		if !own && !m.readOnly {
			t.Errorf("%s, inherited from this machine, is writable inside: %+v", dir, m)
		}
	}
	for _, dir := range []string{"/", "/proc/sys", "/sys"} {
		if m := mounts[dir]; !m.readOnly {
			t.Errorf("%s inside is %+v, want read-only", dir, m)
		}
	}
	if _, err := os.Stat(h.Root() + canary); err == nil {
		t.Errorf("this machine's %s is visible inside", canary)
	}
	if _, err := os.Stat(canary); err != nil {
		t.Errorf("this machine's %s is gone: %v", canary, err)
	}
	if now, err := os.Lstat("/dev/log"); (err == nil) != (devLogErr == nil) || (err == nil && !os.SameFile(now, devLog)) {
		t.Errorf("/dev/log on this machine changed: before the boot %v, after %v", devLogErr, err)
	}
	if !sameDevice(t, h.Root()+"/dev/console", "/dev/null") {
		t.Error("/dev/console inside is not /dev/null: systemd would write to this machine's console")
	}
	if now, _ := os.ReadFile("/proc/sys/fs/nr_open"); string(now) != string(nrOpen) {
		t.Errorf("fs.nr_open changed from %s to %s", nrOpen, now)
	}
}

// mount is one line of /proc/PID/mountinfo.
type mount struct {
	fstype   string
	readOnly bool
}

// topMounts reads the mounts of pid's mount namespace, the topmost for
// each mount point.
func topMounts(t *testing.T, pid int) map[string]mount {
	t.Helper()
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]mount{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, _ := strings.Cut(sc.Text(), " - ")
		fields, after := strings.Fields(pre), strings.Fields(post)
		if len(fields) < 6 || len(after) < 1 {
			t.Fatalf("mountinfo line %q", sc.Text())
		}
		opts := "," + fields[5] + ","
		out[fields[4]] = mount{fstype: after[0], readOnly: strings.Contains(opts, ",ro,")}
	}
	return out
}

// sameDevice reports whether the device files a and b are the same
// device (their rdev).
func sameDevice(t *testing.T, a, b string) bool {
	t.Helper()
	var sa, sb syscall.Stat_t
	if err := syscall.Stat(a, &sa); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat(b, &sb); err != nil {
		t.Fatal(err)
	}
	return sa.Rdev == sb.Rdev
}
