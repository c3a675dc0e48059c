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

// watchRelink needs inotify: the paths are restored after the stop.
func watchRelink([]link) (func() []string, error) {
	return nil, errors.New("no inotify")
}

// guardPath needs Linux bind mounts.
func guardPath(link) error { return errors.New("no bind mounts") }

func unguardPath(link) error { return nil }

// leftoverGuard: no bind mounts, no leftovers.
func leftoverGuard(string) (string, bool) { return "", false }

func removeLeftoverGuard(string, string) error { return nil }
