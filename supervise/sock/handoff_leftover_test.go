//go:build linux

package sock

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/safe-restart/safe-restart/internal/nstest"
)

// TestRemoveStaleSocketUnderLeftoverGuard: a safe-restart killed during a
// handoff left its bind mount over a socket path whose server is gone; the
// next start's clean-up unmounts it (the spare's pid runs no more), removes
// the spare and the stale socket. A guard whose safe-restart still runs
// is left alone.
func TestRemoveStaleSocketUnderLeftoverGuard(t *testing.T) {
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "app.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // the server is gone; its socket file stays
	guard := func(pid string) string {
		spare := filepath.Join(dir, ".app.sock"+spareInfix+pid)
		if err := os.Link(path, spare); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount(spare, path, "", unix.MS_BIND, ""); err != nil {
			t.Fatal(err)
		}
		return spare
	}
	mounted := func() bool {
		data, err := os.ReadFile("/proc/self/mountinfo")
		return err == nil && strings.Contains(string(data), " "+path+" ")
	}

	live := guard("1") // PID 1 of this namespace: this test, alive
	if removed, err := RemoveStaleSockets([]string{path}, zerolog.Nop()); err == nil || len(removed) != 0 || !mounted() {
		t.Fatalf("a live handoff's guard: removed %v, %v, mounted %v; want it left alone (the removal fails)", removed, err, mounted())
	}
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	os.Remove(live)

	spare := guard("4194000") // no such process
	removed, err := RemoveStaleSockets([]string{path}, zerolog.Nop())
	if err != nil || len(removed) != 1 || mounted() {
		t.Fatalf("removed %v, %v, still mounted %v", removed, err, mounted())
	}
	for _, p := range []string{path, spare} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s still there: %v", p, err)
		}
	}
}
