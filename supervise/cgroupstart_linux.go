//go:build linux

package supervise

import (
	"context"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/safe-restart/safe-restart/supervise/proc"
)

// startInCGroup runs argv (see command) as a child born in the cgroup v2
// directory dir (clone3 with CLONE_INTO_CGROUP, Linux 5.7), so that what
// it starts is there from its first instruction, and returns its output.
func startInCGroup(ctx context.Context, argv []string, dir string) (string, error) {
	fd, err := proc.RetryEINTR(func() (int, error) { return unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0) })
	if err != nil {
		return "", &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer proc.CloseFD(fd)
	cmd := proc.Command(ctx, argv)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	return proc.RunCombined(cmd)
}
