package ipcguard

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ReadPosix lists the POSIX shared memory segments and named semaphores
// ("sem.NAME") in shmDir (normally "/dev/shm"): its regular files, by name;
// symlinks, directories and files that vanish are skipped. Holders come
// from one scan of the processes under procRoot (normally "/proc"): a
// mapping in /proc/PID/maps of the file's path with the file's inode gives
// Holder{PID, "map"}, and an fd in /proc/PID/fd resolving to the path with
// the file's device and inode gives Holder{PID, "fd"}. Mappings of deleted
// files (" (deleted)") are of another inode and are not holders. Processes
// that vanish are skipped. A process whose maps or fds cannot be read
// (EACCES) is a Holder{PID, HowUnreadable} of every object, as a missed
// holder could make a used object look orphaned; any other error fails the
// call. A malformed maps line is an error wrapping ErrMalformed naming the
// file.
func ReadPosix(shmDir, procRoot string) ([]PosixObject, error) {
	objs, err := listPosix(shmDir)
	if err != nil {
		return nil, fmt.Errorf("read posix objects: %w", err)
	}
	if len(objs) == 0 {
		return objs, nil
	}
	if err := findHolders(objs, shmDir, procRoot); err != nil {
		return nil, fmt.Errorf("read posix objects: %w", err)
	}
	return objs, nil
}

// listPosix returns the regular files of dir as PosixObjects, by name.
func listPosix(dir string) ([]PosixObject, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	objs := make([]PosixObject, 0, len(entries))
	for _, e := range entries {
		fi, err := os.Lstat(filepath.Join(dir, e.Name()))
		if vanished(err) || (err == nil && !fi.Mode().IsRegular()) {
			continue
		}
		if err != nil {
			return nil, err
		}
		objs = append(objs, posixObject(fi))
	}
	return objs, nil
}

// posixObject describes the regular file fi of the shm directory.
func posixObject(fi os.FileInfo) PosixObject {
	st, _ := statOf(fi)
	return PosixObject{Name: fi.Name(), Sem: strings.HasPrefix(fi.Name(), "sem."), Size: fi.Size(),
		Mode: st.mode, UID: st.uid, GID: st.gid, Dev: st.dev, Inode: st.ino,
		MTimeNs: st.mtimeNs, CTimeNs: st.ctimeNs}
}

// fileStat is what ReadPosix needs of a stat(2) result.
type fileStat struct {
	mode, uid, gid   uint32 // permission bits (07777), owner
	dev, ino         uint64 // identity
	mtimeNs, ctimeNs int64
}

// holderScan collects the holders of objs during one scan of procRoot.
type holderScan struct {
	objs   []PosixObject
	byPath map[string]int    // object path -> index in objs
	byMaps map[string][]int  // object path as /proc/PID/maps prints it -> indexes
	seen   map[holderAt]bool // holders already added
}

// holderAt is a holder of objs[i].
type holderAt struct {
	i int
	h Holder
}

// findHolders fills the Holders of objs, files of shmDir, from every
// process under procRoot, sorted by pid then how.
func findHolders(objs []PosixObject, shmDir, procRoot string) error {
	s := newHolderScan(objs, canonicalDir(shmDir))
	pids, err := listPIDs(procRoot)
	if err != nil {
		return err
	}
	for _, pid := range pids {
		pdir := filepath.Join(procRoot, fmt.Sprint(pid))
		if err := s.scanMaps(pdir, pid); err != nil {
			return err
		}
		if err := s.scanFDs(pdir, pid); err != nil {
			return err
		}
	}
	for i := range objs {
		slices.SortFunc(objs[i].Holders, compareHolders)
	}
	return nil
}

// newHolderScan indexes objs, files of dir, by path.
func newHolderScan(objs []PosixObject, dir string) *holderScan {
	s := &holderScan{objs: objs, byPath: make(map[string]int, len(objs)),
		byMaps: make(map[string][]int, len(objs)), seen: map[holderAt]bool{}}
	for i := range objs {
		path := dir + "/" + objs[i].Name
		s.byPath[path] = i
		s.byMaps[escapeMapsPath(path)] = append(s.byMaps[escapeMapsPath(path)], i)
	}
	return s
}

// canonicalDir returns dir as the kernel prints paths under it: absolute,
// clean, symlinks resolved (falling back to the cleaned absolute path).
func canonicalDir(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	return strings.TrimSuffix(dir, "/")
}

// add records h as a holder of objs[i], once.
func (s *holderScan) add(i int, h Holder) {
	if k := (holderAt{i, h}); !s.seen[k] {
		s.seen[k] = true
		s.objs[i].Holders = append(s.objs[i].Holders, h)
	}
}

// compareHolders orders holders by pid, then how.
func compareHolders(a, b Holder) int {
	return cmp.Or(cmp.Compare(a.PID, b.PID), cmp.Compare(a.How, b.How))
}
