//go:build linux

package nstest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Environment variables that connect the parent test process with the
// re-executed child. They are an implementation detail, exported only through
// the behaviour of InPrivateNamespaces and Inside.
const (
	// EnvMarker holds the full name (t.Name()) of the test the child runs.
	EnvMarker = "SAFE_RESTART_NSTEST"
	// EnvHostNS holds the parent's namespace links ("ipc:[…] mnt:[…] …").
	EnvHostNS = "SAFE_RESTART_NSTEST_HOSTNS"
	// EnvToken holds a random token unique to one re-execution; every
	// process of the namespace that keeps the inherited environment carries
	// it, which is how the parent checks that nothing survived.
	EnvToken = "SAFE_RESTART_NSTEST_TOKEN"
)

// Cloneflags are the namespaces the child is created in.
const Cloneflags = syscall.CLONE_NEWIPC | syscall.CLONE_NEWPID | syscall.CLONE_NEWNS | syscall.CLONE_NEWNET

// namespaces compared between parent and child.
var nsKinds = []string{"ipc", "mnt", "net", "pid"}

var (
	setupOnce sync.Once
	setupErr  error
)

func init() {
	// In the re-executed child, set the namespaces up before any test code
	// (including the bodies of ancestor tests that merely lead to the target
	// subtest) runs. Errors are reported by InPrivateNamespaces.
	if Inside() {
		setupOnce.Do(func() { setupErr = setupChild() })
	}
}

// Inside reports whether this process is a child re-executed by
// InPrivateNamespaces (and therefore PID 1 of private IPC, PID, mount and
// network namespaces).
func Inside() bool {
	_, ok := os.LookupEnv(EnvMarker)
	return ok
}

// InPrivateNamespaces runs the calling test in private IPC, PID, mount and
// network namespaces. It returns true in the process that must run the test
// body (the namespaced child) and false in the parent, which has already
// waited for the child, reported its output and result, and must return:
//
//	if !nstest.InPrivateNamespaces(t) {
//		return
//	}
//
// In the parent it skips the test (t.Skip) when namespaces cannot be created
// (not root, or clone fails with EPERM/EINVAL/ENOSYS), unless the environment
// has CI=true, in which case the test fails instead. A child that skipped
// makes the parent skip too; a child that failed makes the parent fail.
//
// Inside the child, further calls (from the same test, a subtest or an
// ancestor leading to it) return true at once: the whole child process is
// already isolated.
func InPrivateNamespaces(t *testing.T) bool {
	t.Helper()
	if Inside() {
		setupOnce.Do(func() { setupErr = setupChild() })
		if setupErr != nil {
			t.Fatalf("nstest: setting up the private namespaces failed: %v", setupErr)
		}
		marker := os.Getenv(EnvMarker)
		name := t.Name()
		if marker != name && !strings.HasPrefix(name, marker+"/") && !strings.HasPrefix(marker, name+"/") {
			t.Fatalf("nstest: child for %q unexpectedly runs %q", marker, name)
		}
		return true
	}
	runChild(t)
	return false
}

func runChild(t *testing.T) {
	t.Helper()
	RequireRoot(t, "nstest: creating IPC/PID/mount/network namespaces")
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	hostNS, err := readNamespaces()
	if err != nil {
		t.Fatalf("nstest: %v", err)
	}
	token := newToken()

	args := []string{"-test.run=" + RunPattern(t.Name()), "-test.v=true", "-test.count=1"}
	if testing.Short() {
		args = append(args, "-test.short")
	}
	ctx := context.Background()
	if d, ok := t.Deadline(); ok {
		remaining := time.Until(d)
		grace := min(max(remaining/20, time.Second), 10*time.Second)
		if remaining <= 2*grace {
			t.Fatalf("nstest: only %v left before the test deadline", remaining)
		}
		// The child times out first (and prints its goroutines); the parent
		// kills it if it still hangs.
		args = append(args, "-test.timeout="+(remaining-2*grace).String())
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-grace))
		defer cancel()
	}

	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = append(withoutNstestEnv(os.Environ()),
		EnvMarker+"="+t.Name(),
		EnvHostNS+"="+hostNS,
		EnvToken+"="+token,
	)
	// A -race binary sleeps atexit_sleep_ms (default 1s) before exiting;
	// the parent's own exit keeps that protection.
	if g := os.Getenv("GORACE"); !strings.Contains(g, "atexit_sleep_ms") {
		cmd.Env = append(cmd.Env, "GORACE="+strings.TrimSpace(g+" atexit_sleep_ms=0"))
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: Cloneflags,
		Pdeathsig:  syscall.SIGKILL,
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatalf("nstest: %v", err)
	}
	defer pr.Close()
	cmd.Stdout, cmd.Stderr = pw, pw

	start := time.Now()
	// Pdeathsig is delivered when the *thread* that forked the child exits;
	// keep this goroutine on its thread until the child has been waited for.
	runtime.LockOSThread()
	err = cmd.Start()
	pw.Close()
	if err != nil {
		runtime.UnlockOSThread()
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOSYS) || errors.Is(err, syscall.EUSERS) || errors.Is(err, syscall.ENOSPC) {
			skipOrFail(t, "nstest: cannot create private namespaces (clone flags %#x): %v", Cloneflags, err)
		}
		t.Fatalf("nstest: starting %s in private namespaces: %v", exe, err)
	}

	res := make(chan childResult, 1)
	go func() { res <- scanChild(t, pr, t.Name()) }()
	waitErr := cmd.Wait()
	runtime.UnlockOSThread()
	// The pipe reaches EOF once every process of the namespace has closed it;
	// they are all gone once PID 1 has been reaped. A process outside the
	// namespace could only hold it if the fd was passed out explicitly.
	var r childResult
	select {
	case r = <-res:
	case <-time.After(10 * time.Second):
		t.Errorf("nstest: output pipe still open 10s after the child exited; some process outside the namespace holds it")
		pr.Close()
		r = <-res
	}
	elapsed := time.Since(start)

	// Safety net for the kernel guarantee (all processes of a PID namespace
	// are killed when its PID 1 exits): nothing may still carry our token.
	if leaked := killCarriers(EnvToken + "=" + token); len(leaked) > 0 {
		t.Errorf("nstest: processes of the namespace survived it (now SIGKILLed): pids %v", leaked)
	}

	switch {
	case waitErr != nil:
		t.Fatalf("nstest: %s in private namespaces failed after %v: %v (result line: %q)", t.Name(), elapsed.Round(time.Millisecond), waitErr, r.status)
	case r.status == "SKIP":
		t.Skipf("nstest: skipped inside private namespaces: %s", strings.Join(r.skipReason, " | "))
	case r.status != "PASS":
		t.Fatalf("nstest: child exited 0 but reported no result for %s (status %q); is the test selectable with -test.run=%s?", t.Name(), r.status, RunPattern(t.Name()))
	}
}

type childResult struct {
	status     string // PASS, FAIL, SKIP or ""
	skipReason []string
}

// scanChild copies the child's output line by line to t.Log and finds the
// result line of the test named name.
func scanChild(t *testing.T, r io.Reader, name string) childResult {
	var res childResult
	br := bufio.NewReader(r)
	inSkip := false
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			line = strings.TrimRight(strings.ReplaceAll(line, "\x16", ""), "\r\n")
			t.Log("ns| " + line)
			trimmed := strings.TrimSpace(line)
			if inSkip {
				if strings.HasPrefix(trimmed, "--- ") || strings.HasPrefix(trimmed, "=== ") || trimmed == "PASS" || trimmed == "FAIL" {
					inSkip = false
				} else if trimmed != "" {
					res.skipReason = append(res.skipReason, trimmed)
				}
			}
			for _, st := range []string{"PASS", "FAIL", "SKIP"} {
				if strings.HasPrefix(trimmed, "--- "+st+": "+name+" (") {
					res.status = st
					inSkip = st == "SKIP"
				}
			}
		}
		if err != nil {
			return res
		}
	}
}

func withoutNstestEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if k == EnvMarker || k == EnvHostNS || k == EnvToken {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func newToken() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// readNamespaces returns "ipc:[…] mnt:[…] net:[…] pid:[…]" for this process.
func readNamespaces() (string, error) {
	var parts []string
	for _, k := range nsKinds {
		l, err := os.Readlink("/proc/self/ns/" + k)
		if err != nil {
			return "", err
		}
		parts = append(parts, l)
	}
	return strings.Join(parts, " "), nil
}

// setupChild runs in the re-executed child, which is PID 1 of new IPC, PID,
// mount and network namespaces.
func setupChild() error {
	if pid := os.Getpid(); pid != 1 {
		return fmt.Errorf("expected to be PID 1 of a new PID namespace, am PID %d", pid)
	}
	hostNS := strings.Fields(os.Getenv(EnvHostNS))
	ours, err := readNamespaces()
	if err != nil {
		return err
	}
	if len(hostNS) != len(nsKinds) {
		return fmt.Errorf("bad %s=%q", EnvHostNS, os.Getenv(EnvHostNS))
	}
	// Like runc's TestIPCPrivate: the links must differ from the parent's.
	for i, l := range strings.Fields(ours) {
		if hostNS[i] == l {
			return fmt.Errorf("namespace %s is shared with the parent (%s)", nsKinds[i], l)
		}
	}
	// Nothing we mount may propagate back to the host.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making / private: %w", err)
	}
	// A proc of our own PID (and IPC: /proc/sysvipc) namespace.
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mounting /proc: %w", err)
	}
	if self, err := os.Readlink("/proc/self"); err != nil || self != "1" {
		return fmt.Errorf("/proc/self is %q (%v), want \"1\"", self, err)
	}
	// POSIX shared memory lives in the /dev/shm tmpfs, which is not
	// namespaced; give the child a fresh one. POSIX message queues follow
	// the IPC namespace of the mounting process.
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if err := unix.Mount("shm", "/dev/shm", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777"); err != nil {
			return fmt.Errorf("mounting /dev/shm: %w", err)
		}
	}
	if fi, err := os.Stat("/dev/mqueue"); err == nil && fi.IsDir() {
		if err := unix.Mount("mqueue", "/dev/mqueue", "mqueue", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return fmt.Errorf("mounting /dev/mqueue: %w", err)
		}
	}
	if err := loopbackUp(); err != nil {
		return fmt.Errorf("bringing up lo: %w", err)
	}
	for _, kind := range []string{"sem", "shm", "msg"} {
		if n, err := sysvCount(kind); err != nil {
			return err
		} else if n != 0 {
			return fmt.Errorf("/proc/sysvipc/%s holds %d objects in a fresh IPC namespace", kind, n)
		}
	}
	return nil
}

func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("SIOCGIFFLAGS: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("SIOCSIFFLAGS: %w", err)
	}
	return nil
}

// sysvCount returns how many objects /proc/sysvipc/<kind> lists.
func sysvCount(kind string) (int, error) {
	b, err := os.ReadFile("/proc/sysvipc/" + kind)
	if err != nil {
		return 0, err
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return len(lines) - 1, nil // minus the header
}

// killCarriers SIGKILLs every process whose environment holds the exact
// entry kv and returns their PIDs. It opens a pidfd before it reads a
// process's environment and signals through it, so a recycled PID is never
// signalled: had the PID changed hands in between, the pidfd would refer to
// the exited process and the signal go nowhere. (nstest cannot use
// proctest, which imports ipcguard, whose tests import nstest.)
func killCarriers(kv string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid > 0 && killIfCarrier(pid, kv) {
			out = append(out, pid)
		}
	}
	return out
}

// killIfCarrier SIGKILLs process pid if its environment holds kv and
// reports whether it did.
func killIfCarrier(pid int, kv string) bool {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil || !slices.Contains(strings.Split(string(env), "\x00"), kv) {
		return false
	}
	return unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0) == nil
}
