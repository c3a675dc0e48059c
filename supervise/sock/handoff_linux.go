//go:build linux

package sock

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
)

// DupListeners duplicates the master's listeners into safe-restart with
// pidfd_getfd (Linux 5.6; it needs the right to ptrace the master), each
// proven to be the socket wanted by its inode.
func DupListeners(root string, master ipcguard.Proc, want []Listener) ([]Held, error) {
	pidfd, err := proc.PidfdOpen(master.PID)
	if err != nil {
		return nil, err
	}
	defer proc.CloseFD(pidfd)
	if !proc.SameAlive(root, master) { // the pid may name another process since
		return nil, fmt.Errorf("master %d exited", master.PID)
	}
	fdOf := map[uint64]int{}
	for _, s := range SocketFDs(root, master.PID) {
		if _, ok := fdOf[s.Inode]; !ok {
			fdOf[s.Inode] = s.FD
		}
	}
	var out []Held
	fail := func(err error) ([]Held, error) {
		for _, s := range out {
			s.File.Close()
		}
		return nil, err
	}
	for _, l := range want {
		target, ok := fdOf[l.Inode]
		if !ok {
			return fail(fmt.Errorf("listener %s: no longer among the master's fds", l.Addr))
		}
		s, err := dupListener(pidfd, target, l)
		if err != nil {
			return fail(err)
		}
		out = append(out, s)
	}
	return out, nil
}

// dupListener takes the master's fd target (pidfd_getfd) and checks that
// it is the listener l: same socket inode.
func dupListener(pidfd, target int, l Listener) (Held, error) {
	fd, err := unix.PidfdGetfd(pidfd, target, 0)
	if err != nil {
		return Held{}, fmt.Errorf("listener %s: %w", l.Addr, os.NewSyscallError("pidfd_getfd", err))
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Ino != l.Inode {
		proc.CloseFD(fd)
		return Held{}, fmt.Errorf("listener %s: the master's fd %d is no longer that socket", l.Addr, target)
	}
	s := Held{Listener: l}
	sa, err := unix.Getsockname(fd)
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		s.Family, s.IP, s.Port = "inet", net.IP(a.Addr[:]), a.Port
	case *unix.SockaddrInet6:
		s.Family, s.IP, s.Port = "inet6", net.IP(a.Addr[:]), a.Port
	case *unix.SockaddrUnix:
		s.Family, s.Path = "unix", a.Name
	default:
		proc.CloseFD(fd)
		return Held{}, fmt.Errorf("listener %s: unsupported address %T (%v)", l.Addr, sa, err)
	}
	s.File = os.NewFile(uintptr(fd), "listener "+l.Addr)
	return s, nil
}

// watchRelink watches the directories of the links with inotify and links
// a socket's path back the moment it is deleted, so that the window in
// which clients find no socket file is short. The watch runs on its own
// OS thread, blocked in read(2) rather than in Go's poller, to react
// without waiting for the scheduler's poll. The returned stop ends the
// watch and returns the paths restored.
func watchRelink(links []link) (func() []string, error) {
	ifd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("inotify_init1", err)
	}
	byName, dirs := map[string]link{}, map[int32]string{}
	for _, l := range links {
		wd, err := unix.InotifyAddWatch(ifd, filepath.Dir(l.Path), unix.IN_DELETE|unix.IN_MOVED_FROM)
		if err != nil {
			proc.CloseFD(ifd)
			return nil, os.NewSyscallError("inotify_add_watch", err)
		}
		byName[l.Path], dirs[int32(wd)] = l, filepath.Dir(l.Path)
	}
	var mu sync.Mutex
	var restored []string
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread() // the thread exits with the goroutine
		defer close(done)
		buf := make([]byte, 64<<10)
		for {
			paths, err := readDeleted(ifd, buf, dirs)
			for _, path := range paths {
				if l, ok := byName[path]; ok && relink(l) {
					mu.Lock()
					restored = append(restored, path)
					mu.Unlock()
				}
			}
			if err != nil {
				return
			}
		}
	}()
	return func() []string {
		// Removing the watches queues IN_IGNORED events, which wakes the
		// read; closing the fd then ends it.
		for wd := range dirs {
			_, _ = unix.InotifyRmWatch(ifd, uint32(wd))
		}
		<-done
		proc.CloseFD(ifd)
		mu.Lock()
		defer mu.Unlock()
		return restored
	}, nil
}

// readDeleted reads the pending inotify events and returns the paths they
// name (directory watches: the directory's path joined with the name).
// It blocks until events arrive; the error io.EOF says every watch was
// removed (the last event is IN_IGNORED).
func readDeleted(ifd int, buf []byte, dirs map[int32]string) ([]string, error) {
	n, err := proc.RetryEINTR(func() (int, error) { return unix.Read(ifd, buf) })
	if err != nil || n <= 0 {
		return nil, fmt.Errorf("read inotify events: %w", errors.Join(err, io.EOF))
	}
	var out []string
	ignored := 0
	for off := 0; off+unix.SizeofInotifyEvent <= n; {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
		name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)]), "\x00")
		off += unix.SizeofInotifyEvent + int(ev.Len)
		if ev.Mask&unix.IN_IGNORED != 0 {
			ignored++
		} else if dir, ok := dirs[ev.Wd]; ok {
			out = append(out, filepath.Join(dir, name))
		}
	}
	if ignored > 0 {
		return out, io.EOF
	}
	return out, nil
}

// guardPath bind-mounts the spare link over the socket's path (it needs
// CAP_SYS_ADMIN): clients still reach the same socket through it, and the
// old master's unlink(2) of the path fails with EBUSY (php-fpm ignores
// that; nginx logs it as an [emerg] line as it exits).
//
// The directory may belong to the server's user, who could swap either
// name for a symlink meanwhile: both are opened without following
// symlinks, must be the same socket file, and the mount goes through those
// fds, never through the names.
func guardPath(l link) error {
	src, err := openSocketFile(l.Spare)
	if err != nil {
		return err
	}
	defer proc.CloseFD(src)
	dst, err := openSocketFile(l.Path)
	if err != nil {
		return err
	}
	defer proc.CloseFD(dst)
	var a, b unix.Stat_t
	if err := unix.Fstat(src, &a); err != nil {
		return os.NewSyscallError("fstat", err)
	}
	if err := unix.Fstat(dst, &b); err != nil {
		return os.NewSyscallError("fstat", err)
	}
	if a.Dev != b.Dev || a.Ino != b.Ino {
		return fmt.Errorf("%s is no longer the socket file linked to %s", l.Path, l.Spare)
	}
	if err := unix.Mount(fmt.Sprintf("/proc/self/fd/%d", src), fmt.Sprintf("/proc/self/fd/%d", dst), "", unix.MS_BIND, ""); err != nil {
		return os.NewSyscallError("mount --bind", err)
	}
	return nil
}

// openSocketFile opens path itself (O_PATH, no symlink followed) and
// fails unless it is a socket file.
func openSocketFile(path string) (int, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		proc.CloseFD(fd)
		return -1, fmt.Errorf("%s is not a socket file (a symlink, or replaced)", path)
	}
	return fd, nil
}

// unguardPath removes guardPath's bind mount: the path is the socket's own
// link again.
func unguardPath(l link) error {
	if err := unix.Unmount(l.Path, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil {
		return os.NewSyscallError("umount", err)
	}
	return nil
}

// leftoverGuard reports whether path is still covered by the bind mount of
// a handoff whose safe-restart died before removing it (see guardPath):
// /proc/self/mountinfo has a mount at path whose source is a spare link
// named as keepPaths names it, by a pid that no longer runs. It returns
// the spare's path.
func leftoverGuard(path string) (string, bool) {
	mounts, err := proc.ReadMountInfo()
	if err != nil {
		return "", false
	}
	prefix := "." + filepath.Base(path) + spareInfix
	for _, m := range mounts {
		// 36 35 0:21 /php/.php.sock.safe-restart-123 /run/php/php.sock rw - tmpfs ...
		if m.Point != path {
			continue
		}
		spare := filepath.Base(m.Root)
		pid, err := strconv.Atoi(strings.TrimPrefix(spare, prefix))
		if !strings.HasPrefix(spare, prefix) || err != nil || pid <= 0 {
			continue
		}
		if p, err := ipcguard.ReadProc(proc.DefaultRoot, pid); err == nil && p.Alive() {
			continue // a handoff under way
		}
		return filepath.Join(filepath.Dir(path), spare), true
	}
	return "", false
}

// removeLeftoverGuard unmounts a dead handoff's bind mount from path and
// removes its spare link, so that the stale socket file can go.
func removeLeftoverGuard(path, spare string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil {
		return os.NewSyscallError("umount", err)
	}
	if err := os.Remove(spare); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
