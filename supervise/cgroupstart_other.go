//go:build !linux

package supervise

import (
	"context"
	"errors"
)

// startInCGroup needs clone3's CLONE_INTO_CGROUP, which only Linux has.
func startInCGroup(context.Context, []string, string) (string, error) {
	return "", errors.ErrUnsupported
}
