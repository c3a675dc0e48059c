package supervise

import (
	"os"
	"path/filepath"
)

// writeAtomic replaces path with data, mode perm: a temporary file in the
// same directory, then a rename, so a reader sees the old content or the
// new one, never half of it. Two writers at once: the last rename wins.
func writeAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename: ENOENT, ignored
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), perm); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// fileExists reports whether path names a file (stat succeeds).
func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
