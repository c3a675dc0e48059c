package verify

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRotatedName(t *testing.T) {
	for name, want := range map[string]bool{
		"/l/error.log.1": true, "/l/access.log.2.gz": true, "/l/error.log-20261123": true,
		"/l/error_log-20261123": true, "/l/access_log.1": true,
		"/l/error.log": false, "/l/error_log": false, "/l/error.log.old": false, "/l/x.conf.1": false,
	} {
		if got := rotatedName.MatchString(name); got != want {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
}

// TestRotatedHolders: this process, holding a rotated log open, is found;
// once it closes it, nothing is.
func TestRotatedHolders(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "error.log.1"))
	if err != nil {
		t.Fatal(err)
	}
	held, err := RotatedHolders("/proc", exe, dir)
	if err != nil || len(held[os.Getpid()]) != 1 {
		t.Fatalf("RotatedHolders = %v, %v; want this process holding error.log.1", held, err)
	}
	f.Close()
	if held, err := RotatedHolders("/proc", exe, dir); err != nil || len(held) != 0 {
		t.Fatalf("after close: %v, %v", held, err)
	}
}
