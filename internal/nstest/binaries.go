package nstest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// sbinDirs are searched after $PATH: tests often run with a PATH that lacks
// the sbin directories where daemons such as apache2 live.
var sbinDirs = []string{"/usr/local/sbin", "/usr/sbin", "/sbin"}

// LookPath is exec.LookPath that also searches /usr/local/sbin, /usr/sbin
// and /sbin when they are not in $PATH.
func LookPath(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err == nil || filepath.Base(name) != name {
		return p, err
	}
	for _, d := range sbinDirs {
		c := filepath.Join(d, name)
		if fi, serr := os.Stat(c); serr == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return c, nil
		}
	}
	return "", err
}

// RequireBinaries skips the test unless every named executable is found by
// LookPath. With CI=true in the environment it fails the test instead, so
// that a misconfigured CI runner does not pass by skipping everything.
func RequireBinaries(t *testing.T, names ...string) {
	t.Helper()
	var missing []error
	for _, n := range names {
		if _, err := LookPath(n); err != nil {
			missing = append(missing, err)
		}
	}
	if len(missing) > 0 {
		skipOrFail(t, "nstest: required binaries missing (searched $PATH and %v): %v", sbinDirs, errors.Join(missing...))
	}
}
