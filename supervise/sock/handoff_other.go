//go:build !linux

package sock

import (
	"errors"

	"github.com/safe-restart/safe-restart/ipcguard"
)

// DupListeners needs pidfd_getfd, which only Linux has.
func DupListeners(string, ipcguard.Proc, []Listener) ([]Held, error) {
	return nil, errors.New("taking a process's sockets needs Linux (pidfd_getfd)")
}

// WatchRelink needs inotify: the paths are restored after the stop.
func WatchRelink([]Link) (func() []string, error) {
	return nil, errors.New("no inotify")
}

// GuardPath needs Linux bind mounts.
func GuardPath(Link) error { return errors.New("no bind mounts") }

func UnguardPath(Link) error { return nil }

// leftoverGuard: no bind mounts, no leftovers.
func leftoverGuard(string) (string, bool) { return "", false }

func removeLeftoverGuard(string, string) error { return nil }
