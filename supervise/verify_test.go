package supervise

import (
	"os"
	"path/filepath"
	"testing"
)

// TestLogTailFollowsRotation: lines written after the mark are read from
// the renamed file and from the new one (logrotate, then a reload).
func TestLogTailFollowsRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "error.log")
	if err := os.WriteFile(path, []byte("before the mark\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tail := newLogTail(dir, "error.log")
	defer tail.close()
	old, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := os.Rename(path, path+".1"); err != nil { // logrotate
		t.Fatal(err)
	}
	if _, err := old.WriteString("AH00171 into the renamed file\n"); err != nil { // the server, before it reopens
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("AH00163 into the new file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got := tail.since()
	if want := "AH00171 into the renamed file\nAH00163 into the new file\n"; got != want {
		t.Fatalf("since() = %q, want %q", got, want)
	}
	if tail := newLogTail(dir, "|/usr/bin/rotatelogs x"); tail.since() != "" {
		t.Fatal("a piped log has no tail")
	}
}
