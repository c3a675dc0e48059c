//go:build !linux

package supervise

import (
	"errors"
	"syscall"
	"time"
)

var errNoSuchProcess = errors.ErrUnsupported

func pidfdOpen(int) (int, error)                              { return -1, errors.ErrUnsupported }
func closeFD(int)                                             {}
func pollReadable([]int, time.Duration, bool) ([]bool, error) { return nil, errors.ErrUnsupported }
func pidfdSignal(int, syscall.Signal) error                   { return errors.ErrUnsupported }
func killPID(int, syscall.Signal) error                       { return errors.ErrUnsupported }

var errNoPidfd = errors.New("no pidfds")

func setChildSubreaper() error { return errors.ErrUnsupported }
func reapNoHang(int) (syscall.WaitStatus, bool, error) {
	return 0, false, errors.ErrUnsupported
}
