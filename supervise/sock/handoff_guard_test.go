//go:build linux

package sock

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

// TestGuardPathRefusesSymlinks: the socket path or its spare swapped for a
// symlink (to a file the server's user controls, or to one root must not
// cover) is never bind-mounted: guardPath fails before mounting.
func TestGuardPathRefusesSymlinks(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "app.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	spare := filepath.Join(dir, ".app.sock.spare")
	if err := os.Link(sock, spare); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("root's file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	swapped := filepath.Join(dir, "swapped.sock")
	if err := os.Symlink(victim, swapped); err != nil {
		t.Fatal(err)
	}
	if err := guardPath(link{Path: swapped, Spare: spare}); err == nil {
		unguardPath(link{Path: swapped})
		t.Fatal("a symlinked target was bind-mounted over")
	}
	if err := guardPath(link{Path: sock, Spare: swapped}); err == nil {
		unguardPath(link{Path: sock})
		t.Fatal("a symlinked source was bind-mounted")
	}
	other := filepath.Join(dir, "other.sock")
	ln2, err := net.Listen("unix", other)
	if err != nil {
		t.Fatal(err)
	}
	defer ln2.Close()
	if err := guardPath(link{Path: other, Spare: spare}); err == nil {
		unguardPath(link{Path: other})
		t.Fatal("a socket file other than the spare's was bind-mounted over")
	}
	if data, err := os.ReadFile(victim); err != nil || string(data) != "root's file\n" {
		t.Fatalf("victim: %q, %v", data, err)
	}
}
