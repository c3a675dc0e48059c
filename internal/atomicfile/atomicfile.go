// Package atomicfile replaces files so that a reader sees the old content
// or the new one, never half of either. It is the one writer of
// safe-restart's state files (lineages, samples, stop records, last
// operations) and of the pidfiles and unit drop-ins it rewrites.
package atomicfile

import (
	"os"
	"path/filepath"
)

// WriteFile replaces path with data, mode perm: a new file of a random
// name in the same directory (O_EXCL, so nothing planted at a known name
// is followed or truncated), then a rename over path. Of two writers at
// once, the last rename wins.
func WriteFile(path string, data []byte, perm os.FileMode) error {
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
