//go:build linux

package supervise

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// The trial's sandbox is built by a copy of this program re-executed
// (/proc/self/exe) as PID 1 of new mount, PID, network, IPC and UTS
// namespaces: the pattern of runc's init and moby's reexec. The copy knows
// itself by trialEnv, which holds its trialSpec, and never returns to the
// program's main (or to a test binary's TestMain).
func init() {
	if spec, ok := os.LookupEnv(trialEnv); ok {
		os.Exit(trialChild(spec))
	}
}

// trialChild builds the sandbox, runs the starter, reports on stdout, then
// stays as the namespace's init, reaping, until its stdin closes (the
// parent is done or dead). Every process of the trial dies with it.
func trialChild(specJSON string) int {
	enc := json.NewEncoder(os.Stdout)
	var spec trialSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		_ = enc.Encode(trialMsg{Setup: "bad trial spec: " + err.Error()})
		return 1
	}
	readOnly, err := buildSandbox(spec)
	if err != nil {
		_ = enc.Encode(trialMsg{Setup: err.Error()})
		return 1
	}
	_ = enc.Encode(trialMsg{Ready: true, ReadOnly: readOnly})
	_ = enc.Encode(runTrialStarter(spec))
	initLoop()
	return 0
}

// buildSandbox gives the trial a view of this machine's files in which
// nothing it writes reaches them, and a network of its own. It reports
// whether the rest of the file system could be made read-only (mount_setattr,
// Linux 5.12): without it a write outside spec.Dirs would reach the file.
func buildSandbox(spec trialSpec) (readOnly bool, err error) {
	if err := mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return false, err
	}
	readOnly = unix.MountSetattr(-1, "/", unix.AT_RECURSIVE, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}) == nil
	// POSIX shared memory is a plain tmpfs, shared by every IPC namespace:
	// a server that recreates a named segment must not remove the live one.
	if err := mount("tmpfs", "/dev/shm", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777"); err != nil {
		return readOnly, err
	}
	for i, dir := range spec.Dirs {
		if err := overlayDir(i, dir); err != nil {
			return readOnly, err
		}
	}
	for _, f := range spec.Remove {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return readOnly, fmt.Errorf("hide %s from the trial: %w", f, err)
		}
	}
	if err := mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return readOnly, err
	}
	return readOnly, loopbackEverywhere()
}

// overlayDir puts a writable overlay on dir: the trial reads what is there
// and writes to a tmpfs (trialStage(i)). Log files are emptied in the
// overlay first, so that the server appends to an empty copy instead of
// making a full one of a large log, and what the trial logs is all there is.
func overlayDir(i int, dir string) error {
	upper, work := filepath.Join(trialStage(i), "upper"), filepath.Join(trialStage(i), "work")
	for _, d := range []string{upper, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	opts := "lowerdir=" + dir + ",upperdir=" + upper + ",workdir=" + work
	if err := mount("overlay", dir, "overlay", 0, opts); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Type().IsRegular() && logName.MatchString(e.Name()) {
			if err := emptyCopy(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
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

// mount is mount(2), naming its target in errors.
func mount(source, target, fstype string, flags uintptr, data string) error {
	for {
		err := unix.Mount(source, target, fstype, flags, data)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("mount %s on %s: %w", or(fstype, "(propagation)"), target, err)
		}
		return nil
	}
}

// loopbackEverywhere brings lo up and makes every address local to it
// (local routes for 0.0.0.0/0 and ::/0, the "AnyIP" routes): a server
// configured to listen on this machine's public address binds it in the
// trial's namespace, and a connection to it reaches the trial's listener.
// IPv6 is best effort (it may be disabled).
func loopbackEverywhere() error {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		return err
	}
	if err := linkUp("lo"); err != nil {
		return err
	}
	if err := addLocalRoute(unix.AF_INET, lo.Index); err != nil {
		return fmt.Errorf("local route 0.0.0.0/0 on lo: %w", err)
	}
	_ = addLocalRoute(unix.AF_INET6, lo.Index)
	return nil
}

// linkUp sets IFF_UP on the interface name.
func linkUp(name string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return os.NewSyscallError("SIOCGIFFLAGS", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return os.NewSyscallError("SIOCSIFFLAGS", unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr))
}

// addLocalRoute is `ip route add local DEFAULT dev IFINDEX table local`
// through rtnetlink (rtnetlink(7)): an RTM_NEWROUTE request, acknowledged.
func addLocalRoute(family, ifindex int) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	const size = unix.SizeofNlMsghdr + unix.SizeofRtMsg + unix.SizeofRtAttr + 4
	b := make([]byte, size)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], size)
	ne.PutUint16(b[4:], unix.RTM_NEWROUTE)
	ne.PutUint16(b[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK|unix.NLM_F_CREATE|unix.NLM_F_EXCL)
	ne.PutUint32(b[8:], 1) // sequence number
	rt := b[unix.SizeofNlMsghdr:]
	rt[0] = byte(family) // dst_len, src_len, tos stay 0: the default route
	rt[4], rt[5], rt[6], rt[7] = unix.RT_TABLE_LOCAL, unix.RTPROT_BOOT, unix.RT_SCOPE_HOST, unix.RTN_LOCAL
	attr := rt[unix.SizeofRtMsg:]
	ne.PutUint16(attr[0:], unix.SizeofRtAttr+4)
	ne.PutUint16(attr[2:], unix.RTA_OIF)
	ne.PutUint32(attr[4:], uint32(ifindex))
	if err := unix.Sendto(fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return os.NewSyscallError("sendto", err)
	}
	return netlinkAck(fd)
}

// netlinkAck reads the NLMSG_ERROR that acknowledges a request: error 0 is
// success, else a negative errno.
func netlinkAck(fd int) error {
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return os.NewSyscallError("recvfrom", err)
	}
	if n < unix.SizeofNlMsghdr+4 || binary.NativeEndian.Uint16(buf[4:]) != unix.NLMSG_ERROR {
		return fmt.Errorf("rtnetlink: unexpected answer (%d bytes)", n)
	}
	if errno := int32(binary.NativeEndian.Uint32(buf[unix.SizeofNlMsghdr:])); errno != 0 {
		return syscall.Errno(-errno)
	}
	return nil
}

// runTrialStarter runs the server's start command in the sandbox and
// returns its exit status and output.
func runTrialStarter(spec trialSpec) trialMsg {
	cmd := exec.Command(spec.Argv[0], spec.Argv[1:]...)
	cmd.Env = spec.Env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Stdin = nil
	err := cmd.Run()
	msg := trialMsg{Started: true, Output: out.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		msg.Exit = exit.ExitCode()
	case err != nil:
		msg.Exit, msg.Output = -1, err.Error()
	}
	return msg
}

// initLoop is the namespace's init: it reaps every process re-parented to
// it (the server's master once its starter exited, and what the master
// leaves) until stdin reaches EOF, then returns.
func initLoop() {
	sigchld := make(chan os.Signal, 16)
	signal.Notify(sigchld, syscall.SIGCHLD)
	eof := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(eof)
	}()
	for {
		reapAll()
		select {
		case <-eof:
			return
		case <-sigchld:
		}
	}
}

// reapAll collects every exited child without blocking.
func reapAll() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
	}
}

// trialStage is where the i-th overlay's upper and work directories live,
// on the trial's own /dev/shm.
func trialStage(i int) string {
	return filepath.Join("/dev/shm", "safe-restart-trial", strconv.Itoa(i))
}
