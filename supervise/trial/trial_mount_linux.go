//go:build linux

package trial

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/verify"
)

// buildSandbox gives the trial a view of this machine's files in which
// nothing it writes reaches them, and a network of its own: every mount
// read-only, an overlay on each directory the server writes, a fresh
// /dev/shm and /proc (its sysctls read-only but the trial network's own),
// /dev/log answering nothing. Any step that fails fails the whole: the
// trial never runs with the machine's files writable. It returns the
// files it emptied in the overlays.
func buildSandbox(spec trialSpec) ([]string, error) {
	if err := mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return nil, err
	}
	mounts, err := mountPoints()
	if err != nil {
		return nil, err
	}
	if err := readOnlyEverywhere(mounts); err != nil {
		return nil, err
	}
	// POSIX shared memory is a plain tmpfs, shared by every IPC namespace:
	// a server that recreates a named segment must not remove the live one.
	if err := mount("tmpfs", "/dev/shm", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777"); err != nil {
		return nil, err
	}
	var emptied []string
	for i, dir := range spec.Dirs {
		if err := overlayDir(i, dir, mountsBelow(mounts, dir)); err != nil {
			return nil, err
		}
		emptied = append(emptied, emptyLogs(dir, spec.Empty)...)
	}
	for _, f := range spec.Remove {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("hide %s from the trial: %w", f, err)
		}
	}
	if err := muteDevLog(); err != nil {
		return nil, err
	}
	if err := mountTrialProc(); err != nil {
		return nil, err
	}
	return emptied, loopbackEverywhere()
}

// mountTrialProc mounts the trial's own /proc, sets the trial network's
// sysctls (see nonlocalBind), then makes /proc/sys read-only and
// /proc/sysrq-trigger answer nothing: what runs in the trial as root (a
// piped logger, a module) cannot change the machine's kernel settings.
func mountTrialProc() error {
	if err := mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return err
	}
	if err := nonlocalBind(); err != nil {
		return err
	}
	if err := mount("/proc/sys", "/proc/sys", "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	if err := mount("", "/proc/sys", "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return err
	}
	if _, err := os.Stat("/proc/sysrq-trigger"); err != nil {
		return nil // no magic SysRq in this kernel
	}
	return mount("/dev/null", "/proc/sysrq-trigger", "", unix.MS_BIND, "")
}

// readOnlyEverywhere makes every mount read-only: mount_setattr (Linux
// 5.12) on the whole tree, else a read-only bind remount of each mount.
func readOnlyEverywhere(mounts []string) error {
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
	if unix.MountSetattr(-1, "/", unix.AT_RECURSIVE, attr) == nil {
		return nil
	}
	return remountReadOnly(mounts)
}

// remountReadOnly remounts each of mounts read-only (bind remount), for
// kernels without mount_setattr.
func remountReadOnly(mounts []string) error {
	for _, m := range mounts {
		var st unix.Statfs_t
		if err := unix.Statfs(m, &st); err != nil {
			continue // gone, or not reachable: nothing to write there
		}
		// A remount must keep the flags a mount has (nosuid, nodev, noexec,
		// noatime: statfs's ST_ bits equal the MS_ ones for these; the
		// kernel keeps the atime mode when no atime flag is given).
		keep := uintptr(st.Flags) & (unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_NOATIME | unix.MS_NODIRATIME)
		if err := mount("", m, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|keep, ""); err != nil {
			return fmt.Errorf("make the file system read-only for the trial: %w", err)
		}
	}
	return nil
}

// overlayDir puts a writable overlay on dir: the trial reads what is there
// and writes to a tmpfs (trialStage(i)). The mounts below dir, which an
// overlay would hide, are moved aside first and back on top after. Log
// files are emptied in the overlay (a server appends to an empty copy
// instead of a full copy of a large log).
func overlayDir(i int, dir string, below []string) error {
	stage := trialStage(i)
	upper, work := filepath.Join(stage, "upper"), filepath.Join(stage, "work")
	for _, d := range []string{upper, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	moved := map[string]string{}
	for k, m := range below {
		aside, err := moveAside(m, filepath.Join(stage, "below", strconv.Itoa(k)))
		if err != nil {
			return err
		}
		if aside != "" {
			moved[m] = aside
		}
	}
	opts := "lowerdir=" + dir + ",upperdir=" + upper + ",workdir=" + work
	if err := mount("overlay", dir, "overlay", 0, opts); err != nil {
		return err
	}
	for _, m := range below {
		if aside, ok := moved[m]; ok {
			if err := mount(aside, m, "", unix.MS_MOVE, ""); err != nil {
				return err
			}
		}
	}
	return nil
}

// moveAside moves the mount at m to aside (a file for a file's mount, a
// directory for a directory's) and returns aside; "" when nothing is
// mounted visibly at m (a mount covered by a later one on a parent: the
// overlay hides nothing of it that anyone could see).
func moveAside(m, aside string) (string, error) {
	fi, err := os.Lstat(m)
	if err != nil {
		return "", nil
	}
	if err := os.MkdirAll(filepath.Dir(aside), 0o755); err != nil {
		return "", err
	}
	if fi.IsDir() {
		err = os.Mkdir(aside, 0o755)
	} else {
		err = os.WriteFile(aside, nil, 0o644)
	}
	if err != nil {
		return "", err
	}
	err = unix.Mount(m, aside, "", unix.MS_MOVE, "")
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
		return "", nil // not a mount point (any more) at that path
	}
	if err != nil {
		return "", fmt.Errorf("move the mount at %s aside: %w", m, err)
	}
	return aside, nil
}

// emptyLogs empties the overlay's copy of the files under dir that the
// running master writes (files) and of every other log file (see verify.LogName),
// looking at most verify.MaxMarkedFiles entries into dir and none on another mount
// (each overlay empties its own; the rest is read-only). It returns the
// files emptied: what the trial then writes there is all there is.
func emptyLogs(dir string, files []string) []string {
	var out []string
	devOf := func(p string) uint64 {
		var st unix.Stat_t
		if unix.Lstat(p, &st) != nil {
			return 0
		}
		return st.Dev
	}
	home, n := devOf(dir), 0
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if n++; n > verify.MaxMarkedFiles {
			return filepath.SkipAll
		}
		switch {
		case err != nil:
			return nil // unreadable: left as it is
		case d.IsDir() && p != dir && devOf(p) != home:
			return filepath.SkipDir
		case d.Type().IsRegular() && (verify.LogName.MatchString(d.Name()) || slices.Contains(files, p)):
			// (Only directories show their mount's st_dev: overlayfs shows
			// a file's own layer's.)
			if emptyCopy(p) == nil {
				out = append(out, p)
			}
		}
		return nil
	})
	return out
}

// emptyCopy empties the overlay's copy of path. It opens with O_TRUNC:
// overlayfs then copies up no data (truncate(2) would copy it all first).
func emptyCopy(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("empty the trial's copy of %s: %w", path, err)
	}
	return f.Close()
}

// muteDevLog puts /dev/null over the syslog socket (/dev/log, or the
// journal's socket it links to): a server logging to syslog must not
// write the trial's lines to this machine's log. A read-only mount does
// not stop a connect(2) to a socket.
func muteDevLog() error {
	target, err := filepath.EvalSymlinks("/dev/log")
	if err != nil {
		return nil // no syslog socket
	}
	return mount("/dev/null", target, "", unix.MS_BIND, "")
}

// mount is mount(2), naming its target in errors.
func mount(source, target, fstype string, flags uintptr, data string) error {
	if err := proc.RetryEINTRErr(func() error { return unix.Mount(source, target, fstype, flags, data) }); err != nil {
		return fmt.Errorf("mount %s on %s: %w", cmp.Or(fstype, source), target, err)
	}
	return nil
}

// mountPoints returns the mount points of this mount namespace, in mount
// order.
func mountPoints() ([]string, error) {
	mounts, err := proc.ReadMountInfo()
	out := make([]string, len(mounts))
	for i, m := range mounts {
		out[i] = m.Point
	}
	return out, err
}

// mountsBelow returns the outermost mount points strictly below dir.
func mountsBelow(mounts []string, dir string) []string {
	var below []string
	for _, m := range mounts {
		if isBelow(m, dir) && !slices.Contains(below, m) {
			below = append(below, m)
		}
	}
	return outermost(below)
}

// sameMount reports whether two paths are on the same mount (statx's
// mount id, Linux 5.8; else the device), as far as can be told: an
// overlay on the one would hide the other's mount if not.
func sameMount(a, b string) bool {
	id := func(p string) (uint64, bool) {
		var st unix.Statx_t
		if err := unix.Statx(unix.AT_FDCWD, p, 0, unix.STATX_MNT_ID, &st); err != nil {
			return 0, false
		}
		if st.Mask&unix.STATX_MNT_ID != 0 {
			return st.Mnt_id, true
		}
		return uint64(st.Dev_major)<<32 | uint64(st.Dev_minor), true
	}
	ia, oka := id(a)
	ib, okb := id(b)
	return !oka || !okb || ia == ib
}
