//go:build !linux

package supervise

import "errors"

// Reuseport programs, TCP_INFO and sock_diag are Linux's: canSteer fails,
// so no overlap is steered.
func canSteer() error                                { return errors.ErrUnsupported }
func attachSteering(int, int, int) error             { return errors.ErrUnsupported }
func detachSteering(int) (bool, error)               { return false, nil }
func setReusePort(int, bool) error                   { return errors.ErrUnsupported }
func acceptQueue(int) (int, error)                   { return 0, errors.ErrUnsupported }
func halfOpen(map[int]bool) (map[uint64]bool, error) { return nil, errors.ErrUnsupported }
