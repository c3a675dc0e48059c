//go:build linux

// Package systemdtest boots a real systemd (Debian's /lib/systemd/systemd)
// as PID 1 of private PID, mount, UTS, IPC and cgroup namespaces, so that
// tests can run servers under their distribution's own unit files, the way
// a host's init runs them, and run safe-restart beside them.
//
// # Usage
//
//	func TestOnSystemd(t *testing.T) {
//		nstest.RequireBinaries(t, "apache2", "systemctl", "nsenter")
//		if !nstest.InPrivateNamespaces(t) {
//			return
//		}
//		h := systemdtest.Boot(t, systemdtest.Options{Units: []string{"apache2.service"}})
//		h.MustRun(t, "systemctl", "start", "apache2")
//		...
//	}
//
// Boot must run inside nstest's namespaces: the systemd shares the test's
// private network namespace (the test dials the servers on 127.0.0.1), and
// dies with the test's PID namespace whatever happens.
//
// # What protects this machine
//
// Before systemd runs, a shell that is PID 1 of the new namespaces (and
// stops at the first failure, never reaching systemd) makes every mount
// private; mounts fresh tmpfs on /run, /tmp and /var/tmp (systemd-tmpfiles
// would otherwise empty this machine's /tmp at boot) and on /var/log (its
// directories recreated empty: the servers' and journald's logs stay
// inside); gives the namespaces their own /dev (a tmpfs with null, zero,
// full, random, urandom and tty bound from this machine's, /dev/console
// bound to /dev/null, and their own devpts and shm), so that journald's
// /dev/log and systemd's console output stay inside; mounts a fresh proc
// with /proc/sys read-only (systemd raises fs.nr_open and fs.file-max at
// boot, which are not namespaced) and a fresh read-only sysfs; mounts a
// cgroup2 whose root is a new cgroup below the test's own (the cgroup
// namespace); disables every generator and masks, under the private /run,
// every unit except targets, slices, journald's and Options.Units; and
// makes every mount it inherited from this machine read-only there (the
// root and any other), so that whatever writes outside its own mounts
// fails instead of changing this machine. The cgroups systemd creates are
// removed when the test ends.
package systemdtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/safe-restart/safe-restart/internal/nstest"
)

// Options says what the booted systemd runs.
type Options struct {
	// Units are the unit files left unmasked besides targets, slices and
	// journald's, e.g. "apache2.service".
	Units []string
	// SafeRestart, when set, is a command installed inside as
	// /usr/bin/safe-restart (where the package and the examples put it; an
	// overlay of this machine's /usr/bin, its upper layer below /run): an
	// executable path, run with SafeRestartEnv added to its environment.
	SafeRestart    string
	SafeRestartEnv []string
	// Tmpfiles are configurations in /usr/lib/tmpfiles.d applied before
	// boot ("php8.2-fpm.conf": /run/php), which the masked
	// systemd-tmpfiles-setup.service would apply on a host. Only those
	// that create paths below /run, which is private: the service would
	// also clean paths this machine shares.
	Tmpfiles []string
	// Drop-ins are files written below /run/systemd/system before boot,
	// by path relative to it ("apache2.service.d/x.conf": contents).
	DropIns map[string]string
}

// Host is a booted systemd.
type Host struct {
	// PID is systemd's pid in the test's PID namespace (nsenter's target).
	PID int
	// CGroup is the cgroup (a directory of the cgroup2 mount) that is the
	// root of the systemd's cgroup namespace.
	CGroup string
	cgRel  string      // CGroup below the cgroup2 mount: how this process sees the namespace's root
	out    *syncBuffer // the boot's and systemd's console
	cmd    *exec.Cmd
	exited chan struct{} // closed once the boot shell or systemd exited
}

// bootScript runs as PID 1 of the new namespaces, with $1 the directory
// of the files to install (see installDir), $2 the units to keep unmasked
// (space separated), $3 the safe-restart binary ("" for none) and $4 the
// tmpfiles.d configurations to apply (space separated). /run is
// covered first, and the files are copied into it before /tmp (where $1
// is) is covered. It execs systemd only when every step before succeeded.
const bootScript = "set -eu\n" + nstest.MinimalDevScript + `mount --make-rprivate /
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir /run/systemdtest
cp -r "$1/." /run/systemdtest/
if [ -n "$3" ]; then
	: > /run/systemdtest/safe-restart.bin
	mount --bind "$3" /run/systemdtest/safe-restart.bin
fi
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=1777 tmpfs /var/tmp
find /var/log -mindepth 1 -maxdepth 1 -type d -printf '%m %U %G %f\n' > /run/systemdtest/logdirs
mount -t tmpfs -o mode=0755 tmpfs /var/log
while read -r m u g n; do
	mkdir -m "$m" "/var/log/$n"
	chown "$u:$g" "/var/log/$n"
done < /run/systemdtest/logdirs
d=/run/systemdtest/dev
mkdir "$d"
minimal_dev "$d" nosuid
: > "$d/console"
mount --bind /dev/null "$d/console"
mkdir "$d/shm" "$d/pts" "$d/mqueue"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$d/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$d/pts"
ln -s pts/ptmx "$d/ptmx"
mount --move "$d" /dev
mount -t proc proc /proc
mount --bind /proc/sys /proc/sys
mount -o remount,bind,ro /proc/sys
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs /sys
mount -t cgroup2 cgroup2 /sys/fs/cgroup
grep -qx '0::/' /proc/self/cgroup
mkdir -p /run/systemd/system /run/systemd/system-generators
for g in /lib/systemd/system-generators/* /usr/lib/systemd/system-generators/*; do
	if [ -e "$g" ]; then ln -sf /dev/null "/run/systemd/system-generators/${g##*/}"; fi
done
keep=" $2 systemd-journald.service systemd-journald.socket systemd-journald-dev-log.socket "
for f in /lib/systemd/system/* /usr/lib/systemd/system/* /etc/systemd/system/*; do
	n=${f##*/}
	case "$keep" in *" $n "*) continue ;; esac
	case "$n" in
	*.service|*.socket|*.timer|*.path|*.mount|*.automount|*.swap) ln -sf /dev/null "/run/systemd/system/$n" ;;
	esac
done
for c in $4; do systemd-tmpfiles --create --prefix=/run "/usr/lib/tmpfiles.d/$c"; done
if [ -d /run/systemdtest/dropins ]; then cp -r /run/systemdtest/dropins/. /run/systemd/system/; fi
if [ -f /run/systemdtest/safe-restart ]; then
	mkdir /run/systemdtest/usr-bin /run/systemdtest/usr-bin-work
	mount -t overlay -o lowerdir=/usr/bin,upperdir=/run/systemdtest/usr-bin,workdir=/run/systemdtest/usr-bin-work overlay /usr/bin
	cp /run/systemdtest/safe-restart /usr/bin/safe-restart
fi
awk '{ print $5 }' /proc/self/mountinfo > /run/systemdtest/mounts
while read -r m; do
	case "$m" in
	/proc|/proc/*|/sys|/sys/*|/dev|/dev/*|/run|/run/*|/tmp|/tmp/*|/var/tmp|/var/tmp/*|/var/log|/var/log/*|/usr/bin) ;;
	*) mount -o remount,bind,ro "$m" ;;
	esac
done < /run/systemdtest/mounts
export container=safe-restart-test
exec /lib/systemd/systemd --system --unit=basic.target
`

// Boot boots systemd (see the package comment) and waits until it
// finished booting. The test's cleanup kills it and removes its cgroups.
func Boot(t *testing.T, o Options) *Host {
	t.Helper()
	if os.Getenv("SAFE_RESTART_NSTEST") == "" {
		t.Fatal("systemdtest.Boot runs only inside nstest.InPrivateNamespaces")
	}
	cg := newCGroup(t) // removed by a cleanup registered before any failure
	dir := installDir(t, o)
	fd, err := os.Open(cg)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	mnt, _ := cgroup2Mount()
	h := &Host{CGroup: cg, cgRel: strings.TrimPrefix(cg, mnt), out: &syncBuffer{}}
	h.cmd = exec.Command("/bin/sh", "-c", bootScript, "boot", dir, strings.Join(o.Units, " "), o.SafeRestart, strings.Join(o.Tmpfiles, " "))
	h.cmd.Stdout, h.cmd.Stderr = h.out, h.out
	h.cmd.Env = cleanEnv(nil)
	h.cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWPID | syscall.CLONE_NEWNS | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC | syscall.CLONE_NEWCGROUP,
		UseCgroupFD: true, CgroupFD: int(fd.Fd()),
		Pdeathsig: syscall.SIGKILL,
	}
	if err := h.cmd.Start(); err != nil {
		t.Fatalf("systemdtest: start: %v", err)
	}
	h.PID = h.cmd.Process.Pid
	h.exited = make(chan struct{})
	go func() { _ = h.cmd.Wait(); close(h.exited) }()
	t.Cleanup(func() { h.shutdown(t) })
	h.awaitBoot(t)
	return h
}

// newCGroup creates a cgroup below this process's own in the cgroup2
// hierarchy and returns its path; cleanup removes it and what systemd
// created below it.
func newCGroup(t *testing.T) string {
	t.Helper()
	mnt, err := cgroup2Mount()
	if err != nil {
		t.Fatalf("systemdtest: %v", err)
	}
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	var own string
	for _, l := range strings.Split(string(self), "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			own = p
		}
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	cg := filepath.Join(mnt, own, "safe-restart-systemdtest-"+hex.EncodeToString(b))
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatalf("systemdtest: %v", err)
	}
	t.Cleanup(func() { removeCGroup(t, cg) })
	return cg
}

// cgroup2Mount is where the cgroup2 hierarchy is mounted (/sys/fs/cgroup,
// or /sys/fs/cgroup/unified on a hybrid host).
func cgroup2Mount() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields := strings.Fields(pre)
		if ok && len(fields) >= 5 && strings.HasPrefix(post, "cgroup2 ") {
			return fields[4], nil
		}
	}
	return "", errors.New("no cgroup2 hierarchy is mounted (/proc/self/mountinfo)")
}

// installDir writes the files the boot script installs.
func installDir(t *testing.T, o Options) string {
	t.Helper()
	dir := t.TempDir()
	for rel, text := range o.DropIns {
		p := filepath.Join(dir, "dropins", rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if o.SafeRestart != "" {
		// The boot script binds the binary to /run/systemdtest before it
		// covers /tmp, where go test builds it.
		script := "#!/bin/sh\nexec env " + shellWords(o.SafeRestartEnv) + " /run/systemdtest/safe-restart.bin \"$@\"\n"
		if err := os.WriteFile(filepath.Join(dir, "safe-restart"), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// shellWords quotes words for sh.
func shellWords(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// cleanEnv is this process's environment without nstest's variables (a
// process carrying them would take itself for a test child), plus extra.
func cleanEnv(extra []string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SAFE_RESTART_NSTEST") {
			out = append(out, kv)
		}
	}
	return append(out, extra...)
}

// awaitBoot waits (at most bootTimeout) until systemd reports its boot
// finished, failing the test at once if it exited.
func (h *Host) awaitBoot(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	for {
		out, err := h.Output(ctx, "systemctl", "is-system-running", "--wait")
		state := strings.TrimSpace(out)
		if state == "running" || state == "degraded" {
			if state == "degraded" {
				failed, _ := h.Output(ctx, "systemctl", "--failed", "--no-legend", "--no-pager")
				t.Logf("systemdtest: booted degraded; failed units: %s", failed)
			}
			return
		}
		select {
		case <-h.exited:
			t.Fatalf("systemdtest: the boot ended (%v); its output: %s", h.cmd.ProcessState, h.out.String())
		case <-ctx.Done():
			t.Fatalf("systemdtest: systemd did not boot in %s (%q, %v); its output: %s", bootTimeout, state, err, h.out.String())
		case <-time.After(50 * time.Millisecond): // systemd's socket is not there yet: nothing to wait on
		}
	}
}

// bootTimeout bounds a boot.
const bootTimeout = time.Minute

// Output runs argv inside the systemd's namespaces (nsenter --all) with
// this process's environment minus nstest's, and returns its stdout and
// stderr.
func (h *Host) Output(ctx context.Context, argv ...string) (string, error) {
	cmd := h.Command(ctx, argv...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// Command is an exec.Cmd that runs argv inside the systemd's namespaces.
// It stays in this process's cgroup, above the namespace's root (inside it
// shows as "/.."): outside every unit, as a command from a shell is.
func (h *Host) Command(ctx context.Context, argv ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--target", strconv.Itoa(h.PID), "--all", "--"}, argv...)...)
	cmd.Env = cleanEnv(nil)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// MustRun runs argv inside (see Output) and fails the test unless it
// exits 0; it returns the output.
func (h *Host) MustRun(t *testing.T, argv ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := h.Output(ctx, argv...)
	if err != nil {
		t.Fatalf("%v: %v: %s", argv, err, out)
	}
	return out
}

// Show returns properties of unit (systemctl show).
func (h *Host) Show(t *testing.T, unit string, props ...string) map[string]string {
	t.Helper()
	out := h.MustRun(t, "systemctl", "show", "--property", strings.Join(props, ","), "--", unit)
	m := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, _ := strings.Cut(l, "=")
		m[k] = v
	}
	return m
}

// ProcRoot is the systemd's /proc seen from the test (its pids are the
// namespace's own).
func (h *Host) ProcRoot() string { return fmt.Sprintf("/proc/%d/root/proc", h.PID) }

// Root is the systemd's root directory seen from the test: its private
// /run and /tmp.
func (h *Host) Root() string { return fmt.Sprintf("/proc/%d/root", h.PID) }

// CGroupOf is the cgroup of the namespace's process pid, as processes
// inside see it ("/system.slice/apache2.service"), "" when it is gone.
func (h *Host) CGroupOf(pid int) string {
	data, err := os.ReadFile(filepath.Join(h.ProcRoot(), strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(data), "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			if rel := strings.TrimPrefix(p, h.cgRel); rel != "" {
				return rel
			}
			return "/"
		}
	}
	return ""
}

// shutdown kills the systemd (and with it its PID namespace), after
// logging its journal and console when the test failed.
func (h *Host) shutdown(t *testing.T) {
	if t.Failed() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		journal, err := h.Output(ctx, "journalctl", "--no-pager", "--lines", "150")
		cancel()
		t.Logf("systemdtest: the journal (%v):\n%s", err, journal)
	}
	_ = h.cmd.Process.Kill()
	<-h.exited
	if t.Failed() {
		t.Logf("systemdtest: systemd's console:\n%s", h.out.String())
	}
}

// removeCGroup removes the cgroup cg and the ones systemd created below
// it, once the kernel has emptied them (shortly after their last process
// is reaped).
func removeCGroup(t *testing.T, cg string) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := removeTree(cg)
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("systemdtest: remove cgroup %s: %v", cg, err)
			return
		}
		time.Sleep(20 * time.Millisecond) // the kernel gives no event for an emptied cgroup here
	}
}

// syncBuffer is a bytes.Buffer that the boot's output is copied into
// while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// removeTree removes a cgroup and its children, deepest first (a cgroup
// directory is removed with rmdir, its files with it).
func removeTree(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return syscall.Rmdir(dir)
}
