package supervise

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Lock is one operation's hold on a service (README.md invariant 7), so
// that cron, logrotate and a deploy never interleave. It is an flock(2) on
// a root-owned file under dir, which the kernel releases when the process
// dies: a killed safe-restart never leaves a stale lock.
type Lock struct {
	f *os.File
}

// lockPoll is how often a waiting caller retries the lock.
const lockPoll = 50 * time.Millisecond

// AcquireLock takes the lock of service in dir, waiting up to ctx's
// deadline; progress, if not nil, is called about once a second while it
// waits. The file is opened with O_NOFOLLOW, so a symlink planted in dir
// cannot redirect it. A timeout wraps ErrLockTimeout; a lock that cannot
// be made (a read-only or full file system, a symlink at its path)
// ErrStateDir.
func AcquireLock(ctx context.Context, dir, service string, progress func(waited time.Duration)) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("%w: lock %s: %w", ErrStateDir, service, err)
	}
	path := filepath.Join(dir, service+".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if errors.Is(err, unix.ELOOP) {
		return nil, fmt.Errorf("%w: lock %s: %s is a symlink, which could redirect the lock: remove it", ErrStateDir, service, path)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: lock %s: %w", ErrStateDir, service, err)
	}
	start, lastProgress := time.Now(), time.Now()
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return &Lock{f: f}, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("%w: lock %s: %w", ErrStateDir, path, os.NewSyscallError("flock", err))
		}
		if progress != nil && time.Since(lastProgress) >= time.Second {
			progress(time.Since(start))
			lastProgress = time.Now()
		}
		select {
		case <-ctx.Done():
			f.Close()
			if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, interruptedUntouched(fmt.Errorf("waiting for the lock of %s: %w", service, ctx.Err()))
			}
			return nil, fmt.Errorf("%w: %s is held by another safe-restart after %s", ErrLockTimeout, path, time.Since(start).Round(time.Millisecond))
		case <-time.After(lockPoll):
		}
	}
}

// Release gives the lock up. It is safe to call more than once.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the last fd releases the flock
	l.f = nil
	return err
}
