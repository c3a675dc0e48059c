//go:build !linux

package supervise

import "errors"

func sockReusePort(int, int) (bool, error) { return false, errors.ErrUnsupported }
