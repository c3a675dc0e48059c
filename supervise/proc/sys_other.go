//go:build !linux

package proc

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
	"time"

	"github.com/safe-restart/safe-restart/ipcguard"
)

var errNoSuchProcess = errors.ErrUnsupported

func PidfdOpen(int) (int, error)                              { return -1, errors.ErrUnsupported }
func CloseFD(int)                                             {}
func pollReadable([]int, time.Duration, bool) ([]bool, error) { return nil, errors.ErrUnsupported }
func pidfdSignal(int, syscall.Signal) error                   { return errors.ErrUnsupported }
func killPID(int, syscall.Signal) error                       { return errors.ErrUnsupported }

var errNoPidfd = errors.New("no pidfds")

func setChildSubreaper() error { return errors.ErrUnsupported }
func reapNoHang(int) (syscall.WaitStatus, bool, error) {
	return 0, false, errors.ErrUnsupported
}

// openRegular opens path for reading, without blocking, only when it is a
// regular file, and returns what it is (see the Linux one; here a file
// swapped between the look and the open is caught after it).
func openRegular(path string) (*os.File, fs.FileInfo, error) {
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return nil, fi, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	if now, err := f.Stat(); err != nil || !os.SameFile(fi, now) {
		f.Close()
		return nil, nil, errors.New(path + " changed while it was opened")
	}
	return f, fi, nil
}

// StartedAt is p.Start (see the Linux one).
func StartedAt(p ipcguard.Proc) time.Time { return p.Start }
