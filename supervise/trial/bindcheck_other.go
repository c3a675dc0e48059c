//go:build !linux

package trial

import "errors"

var errAddrInUse = errors.New("address already in use")

// tryBind needs Linux.
func tryBind(string) error { return errors.ErrUnsupported }
