//go:build linux

package nstest_test

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/safe-restart/safe-restart/internal/nstest"
	"github.com/safe-restart/safe-restart/internal/proctest"
	"github.com/safe-restart/safe-restart/ipcguard"
)

func TestRunPattern(t *testing.T) {
	for name, want := range map[string]string{
		"TestA":                  `^TestA$`,
		"TestA/sub":              `^TestA$/^sub$`,
		"TestA/with_space#01":    `^TestA$/^with_space#01$`,
		"TestA/re.*[x]|(y)/deep": `^TestA$/^re\.\*\[x\]\|\(y\)$/^deep$`,
	} {
		if got := nstest.RunPattern(name); got != want {
			t.Errorf("RunPattern(%q) = %q, want %q", name, got, want)
		}
	}
}

func randomHex(t *testing.T) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func semKeys(t *testing.T) map[int64]bool {
	t.Helper()
	sets, err := ipcguard.ReadSemTable("/proc")
	if err != nil {
		t.Fatal(err)
	}
	keys := map[int64]bool{}
	for _, s := range sets {
		keys[int64(s.Key)] = true
	}
	return keys
}

func TestIsolation(t *testing.T) {
	var kb [4]byte
	rand.Read(kb[:])
	key := int64(binary.BigEndian.Uint32(kb[:])&0x3fffffff | 1)
	t.Setenv("NSTEST_TEST_SEMKEY", strconv.FormatInt(key, 10))
	if !nstest.InPrivateNamespaces(t) {
		// Parent, after the child exited: its semaphore set died with its
		// IPC namespace and never was visible here.
		if semKeys(t)[key] {
			t.Errorf("semaphore set with key %d created inside the namespace is visible on the host", key)
		}
		return
	}
	if pid := os.Getpid(); pid != 1 {
		t.Fatalf("pid = %d, want 1", pid)
	}
	if self, err := os.Readlink("/proc/self"); err != nil || self != "1" {
		t.Fatalf("/proc/self = %q, %v", self, err)
	}
	if k := semKeys(t); len(k) != 0 {
		t.Fatalf("fresh IPC namespace has semaphore sets: %v", k)
	}
	key, _ = strconv.ParseInt(os.Getenv("NSTEST_TEST_SEMKEY"), 10, 64)
	id, _, errno := syscall.Syscall(syscall.SYS_SEMGET, uintptr(key), 1, 0o1000|0o600)
	if errno != 0 {
		t.Fatalf("semget: %v", errno)
	}
	if !semKeys(t)[key] {
		t.Fatalf("semaphore set %d (key %d) not in /proc/sysvipc/sem", id, key)
	}
	// Only our own processes are visible.
	for _, p := range proctest.Processes() {
		if p.PID != 1 && p.PPID != 1 {
			t.Errorf("unexpected process in the namespace: %+v", p)
		}
	}
	// Loopback is up.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatalf("dialing loopback: %v", err)
	}
	c.Close()
}

func TestOrphansDieWithNamespace(t *testing.T) {
	nstest.RequireBinaries(t, "sh", "sleep")
	kv := "NSTEST_ORPHAN_TOKEN=" + randomHex(t)
	k, v, _ := strings.Cut(kv, "=")
	t.Setenv(k, v)
	if !nstest.InPrivateNamespaces(t) {
		if ps := proctest.WithEnv(kv); len(ps) > 0 {
			t.Fatalf("orphans survived the namespace: %+v", ps)
		}
		return
	}
	out, err := exec.Command("sh", "-c", "sleep 1000 </dev/null >/dev/null 2>&1 & echo $!").Output()
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	s, err := proctest.Stat(pid)
	if err != nil {
		t.Fatal(err)
	}
	if s.PPID != 1 || !s.Alive() {
		t.Fatalf("orphan %+v: want a live process re-parented to PID 1", s)
	}
	ps := proctest.WithEnv(kv)
	if len(ps) != 1 || ps[0].Key() != s.Key() {
		t.Fatalf("WithEnv(%q) = %+v, want just %+v", kv, ps, s)
	}
	// Leave it running: the parent checks that it dies with the namespace.
}

func TestKillAndReap(t *testing.T) {
	nstest.RequireBinaries(t, "sh", "sleep")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	out, err := exec.Command("sh", "-c", "sleep 1000 </dev/null >/dev/null 2>&1 & echo $!").Output()
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	p, err := proctest.Identify(pid)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Alive() {
		t.Fatalf("%v not alive", p)
	}
	if err := p.Kill(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	s, err := p.Stat()
	if err != nil || s.State != 'Z' || p.Alive() {
		t.Fatalf("after Kill: %+v, %v; want a zombie that is not Alive", s, err)
	}
	if err := p.Reap(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Stat(); !errors.Is(err, proctest.ErrGone) {
		t.Fatalf("after Reap: %v, want ErrGone", err)
	}
	if err := p.Signal(syscall.SIGKILL); !errors.Is(err, proctest.ErrGone) {
		t.Fatalf("Signal after Reap: %v, want ErrGone", err)
	}
}

var subtestBodies atomic.Int32

func TestSubtests(t *testing.T) {
	names := []string{"plain", "with space", "with/slash", "re.*[x]|(y)", "dup", "dup"}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			if !nstest.InPrivateNamespaces(t) {
				return
			}
			subtestBodies.Add(1)
			if os.Getpid() != 1 {
				t.Errorf("pid %d, want 1", os.Getpid())
			}
			if m := os.Getenv(nstest.EnvMarker); m != t.Name() {
				t.Errorf("marker %q, want %q", m, t.Name())
			}
		})
	}
	if nstest.Inside() {
		// The child of one subtest ran this body only to reach it.
		if n := subtestBodies.Load(); n != 1 {
			t.Errorf("%d subtest bodies ran in the child, want 1", n)
		}
	}
}

func TestNested(t *testing.T) {
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	t.Run("inner", func(t *testing.T) {
		if !nstest.InPrivateNamespaces(t) {
			t.Fatal("nested call returned false inside the namespace")
		}
		if os.Getpid() != 1 {
			t.Errorf("pid %d, want 1", os.Getpid())
		}
	})
}

func TestLookPath(t *testing.T) {
	t.Setenv("PATH", "/nonexistent")
	if _, err := os.Stat("/usr/sbin/apache2"); err == nil {
		if p, err := nstest.LookPath("apache2"); err != nil || p != "/usr/sbin/apache2" {
			t.Errorf("LookPath(apache2) = %q, %v", p, err)
		}
	}
	if _, err := nstest.LookPath("no-such-binary-nstest"); err == nil {
		t.Error("LookPath found a nonexistent binary")
	}
}
