package supervise

import (
	"os"
)

// fileExists reports whether path names a file (stat succeeds).
func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
