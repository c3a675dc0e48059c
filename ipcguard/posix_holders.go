package ipcguard

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// scanMaps adds Holder{pid, "map"} for each object mapped in pdir/maps
// under its path with its inode. A vanished process is skipped; a malformed
// line is an error wrapping ErrMalformed.
func (s *holderScan) scanMaps(pdir string, pid int) error {
	name := filepath.Join(pdir, "maps")
	data, err := os.ReadFile(name)
	if vanished(err) {
		return nil
	}
	if errors.Is(err, fs.ErrPermission) {
		s.unreadable(pid)
		return nil
	}
	if err != nil {
		return err
	}
	for n, rest := 1, string(data); rest != ""; n++ {
		var line string
		line, rest, _ = strings.Cut(rest, "\n")
		inode, path, ok := parseMapsLine(line)
		if !ok {
			return fmt.Errorf("%w: %s line %d: %q", ErrMalformed, name, n, line)
		}
		for _, i := range s.byMaps[path] {
			if s.objs[i].Inode == 0 || s.objs[i].Inode == inode {
				s.add(i, Holder{PID: pid, How: "map"})
			}
		}
	}
	return nil
}

// escapeMapsPath returns path as /proc/PID/maps prints it: seq_file_path
// escapes "\n" as "\012" and nothing else, so two names can print alike;
// the inode tells them apart.
func escapeMapsPath(path string) string {
	return strings.ReplaceAll(path, "\n", `\012`)
}

// scanFDs adds Holder{pid, "fd"} for each fd in pdir/fd that resolves to an
// object's path and has its device and inode. A vanished process or fd is
// skipped.
func (s *holderScan) scanFDs(pdir string, pid int) error {
	fdDir := filepath.Join(pdir, "fd")
	f, err := os.Open(fdDir)
	if vanished(err) {
		return nil
	}
	if errors.Is(err, fs.ErrPermission) {
		s.unreadable(pid)
		return nil
	}
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil && !vanished(err) {
		return err
	}
	for _, name := range names {
		if err := s.checkFD(filepath.Join(fdDir, name), pid); err != nil {
			return err
		}
	}
	return nil
}

// checkFD adds Holder{pid, "fd"} when the fd link at path is an object.
func (s *holderScan) checkFD(path string, pid int) error {
	target, err := os.Readlink(path)
	if vanished(err) {
		return nil
	}
	if errors.Is(err, fs.ErrPermission) {
		s.unreadable(pid)
		return nil
	}
	if err != nil {
		return err
	}
	i, hit := s.byPath[target]
	if !hit {
		return nil
	}
	fi, err := os.Stat(path)
	if vanished(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if st, ok := statOf(fi); !ok || (st.dev == s.objs[i].Dev && st.ino == s.objs[i].Inode) {
		s.add(i, Holder{PID: pid, How: "fd"})
	}
	return nil
}

// unreadable records that pid's maps or fds could not be read (another
// user's process, when not root; or a process hidden by a security
// module): it may hold any object, so each gets Holder{pid, HowUnreadable}.
func (s *holderScan) unreadable(pid int) {
	for i := range s.objs {
		s.add(i, Holder{PID: pid, How: HowUnreadable})
	}
}
