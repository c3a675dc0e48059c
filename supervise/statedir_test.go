package supervise

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckStateDir: a state directory, or one below it, that is a
// symlink, writable by others or owned by another user is refused,
// naming it; this user's own, or one not made yet, passes.
func TestCheckStateDir(t *testing.T) {
	mk := func(t *testing.T, mode os.FileMode) string {
		t.Helper()
		dir := filepath.Join(t.TempDir(), "state")
		if err := os.MkdirAll(filepath.Join(dir, "lineage"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	if err := CheckStateDir(mk(t, 0o755)); err != nil {
		t.Errorf("this user's 0755 dir: %v", err)
	}
	if err := CheckStateDir(filepath.Join(t.TempDir(), "not-yet")); err != nil {
		t.Errorf("a dir not made yet: %v", err)
	}
	open := mk(t, 0o777)
	sub := mk(t, 0o700)
	if err := os.Chmod(filepath.Join(sub, "lineage"), 0o770); err != nil {
		t.Fatal(err)
	}
	foreign := mk(t, 0o700)
	if err := os.Chown(filepath.Join(foreign, "lineage"), 65534, 65534); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(mk(t, 0o700), link); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ dir, says string }{
		{open, open + " is writable by others"},
		{sub, filepath.Join(sub, "lineage") + " is writable by others"},
		{foreign, filepath.Join(foreign, "lineage") + " is owned by uid 65534"},
		{link, link + " is a symlink"},
	} {
		if err := CheckStateDir(c.dir); !errors.Is(err, ErrUnsafeStateDir) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v; want ErrUnsafeStateDir saying %q", c.dir, err, c.says)
		}
	}
}
