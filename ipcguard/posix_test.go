//go:build linux

package ipcguard

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"syscall"
	"testing"
)

// mkfile creates dir/name with size bytes and mode 0640 and returns it open.
func mkfile(t *testing.T, dir, name string, size int64) *os.File {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	if err == nil {
		err = f.Truncate(size)
	}
	if err == nil {
		err = f.Chmod(0o640)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// mapShared maps f (MAP_SHARED) until the test ends, then closes f, so the
// mapping alone holds it.
func mapShared(t *testing.T, f *os.File) {
	t.Helper()
	mem, err := syscall.Mmap(int(f.Fd()), 0, 4096, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Munmap(mem) })
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// selfProcRoot returns a procRoot holding only the test process: a symlink
// to the real /proc/PID. (Other processes are left out: in some sandboxes
// even root may not read /proc/1/maps, which ReadPosix reports as an error.)
func selfProcRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	pid := fmt.Sprint(os.Getpid())
	if err := os.Symlink(filepath.Join("/proc", pid), filepath.Join(root, pid)); err != nil {
		t.Fatal(err)
	}
	return root
}

// posixByName indexes objs by name.
func posixByName(objs []PosixObject) map[string]PosixObject {
	m := make(map[string]PosixObject, len(objs))
	for _, o := range objs {
		m[o.Name] = o
	}
	return m
}

// checkHolders fails t unless each named object has exactly the holders given.
func checkHolders(t *testing.T, objs []PosixObject, want map[string][]Holder) {
	t.Helper()
	got := posixByName(objs)
	for name, w := range want {
		o, ok := got[name]
		if !ok {
			t.Errorf("%q not listed", name)
		} else if !reflect.DeepEqual(o.Holders, w) {
			t.Errorf("%q holders = %+v, want %+v", name, o.Holders, w)
		}
	}
}

func TestReadPosixHolders(t *testing.T) {
	dir, pid := t.TempDir(), os.Getpid()
	mapShared(t, mkfile(t, dir, "mapped", 4096))
	mkfile(t, dir, "opened", 100) // stays open
	mkfile(t, dir, "idle", 7).Close()
	mkfile(t, dir, "sem.lock", 32).Close()
	mapShared(t, mkfile(t, dir, "odd name\nwith newline", 4096))
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("mapped", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	objs, err := ReadPosix(dir, selfProcRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range objs {
		names = append(names, o.Name)
	}
	if want := []string{"idle", "mapped", "odd name\nwith newline", "opened", "sem.lock"}; !reflect.DeepEqual(names, want) {
		t.Errorf("names = %q, want %q", names, want)
	}
	checkHolders(t, objs, map[string][]Holder{
		"mapped":                 {{pid, "map"}},
		"opened":                 {{pid, "fd"}},
		"idle":                   nil,
		"sem.lock":               nil,
		"odd name\nwith newline": {{pid, "map"}},
	})
	checkStat(t, dir, posixByName(objs)["idle"])
	if m := posixByName(objs); !m["sem.lock"].Sem || m["idle"].Sem {
		t.Errorf("Sem flags wrong: %+v", objs)
	}
}

// checkStat compares o with what stat(2) says of dir/o.Name.
func checkStat(t *testing.T, dir string, o PosixObject) {
	t.Helper()
	fi, err := os.Stat(filepath.Join(dir, o.Name))
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	want := PosixObject{Name: o.Name, Size: fi.Size(), Mode: 0o640, UID: st.Uid, GID: st.Gid,
		Dev: uint64(st.Dev), Inode: st.Ino, MTimeNs: st.Mtim.Nano(), CTimeNs: st.Ctim.Nano()}
	if !reflect.DeepEqual(o, want) {
		t.Errorf("got  %+v\nwant %+v", o, want)
	}
}

func TestReadPosixReplaced(t *testing.T) {
	dir, pid := t.TempDir(), os.Getpid()
	old := mkfile(t, dir, "seg", 4096) // kept open and mapped, then renamed away
	mem, err := syscall.Mmap(int(old.Fd()), 0, 4096, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Munmap(mem) })
	if err := os.Rename(filepath.Join(dir, "seg"), filepath.Join(dir, "moved")); err != nil {
		t.Fatal(err)
	}
	mkfile(t, dir, "seg", 4096).Close()
	gone := mkfile(t, dir, "del", 4096) // kept open and mapped, then unlinked
	mapShared(t, mkfile(t, dir, "del2", 4096))
	if err := os.Remove(filepath.Join(dir, "del")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "del2")); err != nil {
		t.Fatal(err)
	}
	_ = gone
	for _, name := range []string{"del", "del (deleted)", "del2", "del2 (deleted)"} {
		mkfile(t, dir, name, 1).Close()
	}
	objs, err := ReadPosix(dir, selfProcRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	checkHolders(t, objs, map[string][]Holder{
		"moved": {{pid, "fd"}, {pid, "map"}},
		"seg":   nil, "del": nil, "del (deleted)": nil, "del2": nil, "del2 (deleted)": nil,
	})
}

func TestReadPosixFakeProc(t *testing.T) {
	shm, proc := t.TempDir(), t.TempDir()
	mkfile(t, shm, "seg one", 4096).Close()
	mkfile(t, shm, "other", 1).Close()
	fi, err := os.Stat(filepath.Join(shm, "seg one"))
	if err != nil {
		t.Fatal(err)
	}
	ino, path := fi.Sys().(*syscall.Stat_t).Ino, filepath.Join(shm, "seg one")
	line := func(inode uint64) string {
		return fmt.Sprintf("7f2c8a000000-7f2c8a021000 rw-s 00000000 00:1a %d                 %s\n", inode, path)
	}
	writeFiles(t, proc, map[string]string{
		"100/maps": "5642133e0000-56421356f000 rw-p 00000000 00:00 0      [heap]\n" + line(ino) + line(ino),
		"101/maps": line(ino + 1),
		"102/fd/3": "->" + path, "102/fd/4": "->" + path, // 102 has no maps: vanished midway
		"103/maps": "", "103/fd/5": "->" + path + " (deleted)",
		"104/x": "", "self/maps": line(ino),
	})
	objs, err := ReadPosix(shm+"/", proc)
	if err != nil {
		t.Fatal(err)
	}
	checkHolders(t, objs, map[string][]Holder{"seg one": {{100, "map"}, {102, "fd"}}, "other": nil})
}

func TestReadPosixMalformedMaps(t *testing.T) {
	shm, proc := t.TempDir(), t.TempDir()
	mkfile(t, shm, "seg", 1).Close()
	writeFiles(t, proc, map[string]string{"100/maps": "5642133e0000-56421356f000 rw-p 00000000 00:00 0\ngarbage\n"})
	_, err := ReadPosix(shm, proc)
	checkErr(t, err, filepath.Join(proc, "100", "maps")+" line 2")
}

func TestReadPosixEmpty(t *testing.T) {
	objs, err := ReadPosix(t.TempDir(), "/nonexistent")
	if err != nil || objs == nil || len(objs) != 0 {
		t.Errorf("ReadPosix(empty dir) = %v, %v; want empty, nil", objs, err)
	}
	if _, err := ReadPosix(filepath.Join(t.TempDir(), "missing"), "/proc"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadPosix(missing dir) error = %v, want ErrNotExist", err)
	}
}

func TestReadPosixRealProc(t *testing.T) {
	dir, pid := t.TempDir(), os.Getpid()
	mapShared(t, mkfile(t, dir, "mapped", 4096))
	mkfile(t, dir, "idle", 1).Close()
	objs, err := ReadPosix(dir, "/proc")
	if err != nil {
		t.Fatal(err)
	}
	// Processes we may not read (on some machines even root cannot read
	// pid 1's maps) are possible holders of every object; set them aside.
	for i := range objs {
		objs[i].Holders = slices.DeleteFunc(objs[i].Holders, func(h Holder) bool { return h.How == HowUnreadable })
		if len(objs[i].Holders) == 0 {
			objs[i].Holders = nil
		}
	}
	checkHolders(t, objs, map[string][]Holder{"mapped": {{pid, "map"}}, "idle": nil})
}
