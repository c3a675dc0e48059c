package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

// TestWriteFile: the file is replaced with its mode, no temporary file is
// left, and a symlink planted where a fixed temporary name would be is
// neither followed nor removed.
func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, path+".tmp"); err != nil {
		t.Fatal(err)
	}
	for _, data := range []string{"old", "new"} {
		if err := WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != "new" {
		t.Fatalf("read %q, %v; want new", got, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	if kept, _ := os.ReadFile(victim); string(kept) != "keep" {
		t.Errorf("the planted symlink's target holds %q", kept)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 { // state.json, victim, the planted link
		t.Errorf("left behind: %v", entries)
	}
}
