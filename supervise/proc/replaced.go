package proc

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// deletedSuffix is what the kernel appends to the path of a file that was
// deleted, or renamed over, after a process opened or mapped it.
const deletedSuffix = " (deleted)"

// Replaced is what of the code a process runs has been replaced on disk
// since it started: a package upgrade renames the new file over the old.
type Replaced struct {
	// Exe is the path of the process's executable when the file it runs is
	// no longer the one at that path; "" when it is.
	Exe string `json:"exe,omitempty"`
	// Libraries are the files it maps executable (shared libraries, an
	// Apache's modules) that were deleted or replaced since, sorted.
	Libraries []string `json:"libraries,omitempty"`
}

// Any reports whether anything was replaced.
func (r Replaced) Any() bool { return r.Exe != "" || len(r.Libraries) > 0 }

// ReplacedCode reads pid's /proc/PID/exe and /proc/PID/maps under root:
// the executable is replaced when its link says " (deleted)" or the file
// at its path (in the process's own root) is another inode; a library when
// an executable mapping of a file says " (deleted)" (data mappings, such
// as Apache's shared memory, and pseudo-files, see pseudoFile, are not
// code a package replaced and are left out).
func ReplacedCode(root string, pid int) (Replaced, error) {
	var r Replaced
	dir := filepath.Join(RootOr(root), strconv.Itoa(pid))
	exe, err := os.Readlink(filepath.Join(dir, "exe"))
	if err != nil {
		return r, fmt.Errorf("pid %d's executable: %w", pid, err)
	}
	if path, deleted := strings.CutSuffix(exe, deletedSuffix); deleted {
		r.Exe = path
	} else if replacedAt(filepath.Join(dir, "exe"), filepath.Join(dir, "root", exe)) {
		r.Exe = exe
	}
	f, err := os.Open(filepath.Join(dir, "maps"))
	if err != nil {
		return r, fmt.Errorf("pid %d's mappings: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		path, deleted := strings.CutSuffix(sc.Text(), deletedSuffix)
		if !deleted || len(fields) < 6 || len(fields[1]) != 4 || fields[1][2] != 'x' {
			continue
		}
		path = strings.TrimSpace(path[strings.Index(path, fields[5]):])
		if pseudoFile(path) {
			continue
		}
		if path != r.Exe && !slices.Contains(r.Libraries, path) {
			r.Libraries = append(r.Libraries, path)
		}
	}
	slices.Sort(r.Libraries)
	return r, sc.Err()
}

// pseudoFile reports whether a mapping's path names no file a package
// installs: shared anonymous memory (/dev/zero, a JIT's executable buffer),
// memfd_create's (/memfd:..., libffi's closures) and SysV shared memory
// (/SYSV...), all " (deleted)" from the start.
func pseudoFile(path string) bool {
	return !strings.HasPrefix(path, "/") || strings.HasPrefix(path, "/dev/") ||
		strings.HasPrefix(path, "/memfd:") || strings.HasPrefix(path, "/SYSV")
}

// replacedAt reports whether the file at path is not the one running
// names (another inode, or none): false when either cannot be read for
// another reason (nothing is judged).
func replacedAt(running, path string) bool {
	var sr, sp syscall.Stat_t
	if syscall.Stat(running, &sr) != nil {
		return false
	}
	if err := syscall.Stat(path, &sp); err != nil {
		return errors.Is(err, syscall.ENOENT)
	}
	return sr.Dev != sp.Dev || sr.Ino != sp.Ino
}
