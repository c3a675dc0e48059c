//go:build !linux

package supervise

import (
	"errors"

	"github.com/safe-restart/safe-restart/ipcguard"
)

// dupListeners needs pidfd_getfd, which only Linux has.
func dupListeners(string, ipcguard.Proc, []Listener) ([]heldSocket, error) {
	return nil, errors.New("taking a process's sockets needs Linux (pidfd_getfd)")
}

// watchRelink needs inotify: the paths are restored after the stop.
func watchRelink([]sockLink) (func() []string, error) {
	return nil, errors.New("no inotify")
}

// guardPath needs Linux bind mounts.
func guardPath(sockLink) error { return errors.New("no bind mounts") }

func unguardPath(sockLink) error { return nil }

// leftoverGuard: no bind mounts, no leftovers.
func leftoverGuard(string) (string, bool) { return "", false }

func removeLeftoverGuard(string, string) error { return nil }
