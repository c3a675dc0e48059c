//go:build !linux

package sock

import "errors"

func ReusePort(int, int) (bool, error) { return false, errors.ErrUnsupported }
func ReusePortOn(int) (bool, error)    { return false, errors.ErrUnsupported }
