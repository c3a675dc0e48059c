//go:build linux

package main

import (
	"github.com/safe-restart/safe-restart/internal/semtest"
	"github.com/safe-restart/safe-restart/ipcguard"
)

// semIDs lists the semaphore sets of this (private) namespace.
func semIDs() (map[int]bool, error) {
	sets, err := ipcguard.ReadSemTable("/proc")
	if err != nil {
		return nil, err
	}
	ids := make(map[int]bool, len(sets))
	for _, s := range sets {
		ids[s.ID] = true
	}
	return ids, nil
}

// removeAll removes the given sets (between rounds).
func removeAll(ids map[int]bool) error {
	for id := range ids {
		if err := semtest.Remove(id); err != nil {
			return err
		}
	}
	return nil
}

// removeOwned removes every set owned by uid, one IPC_RMID each and no
// check at all: what a bare semctl loop costs.
func removeOwned(uid uint32) error {
	sets, err := ipcguard.ReadSemTable("/proc")
	if err != nil {
		return err
	}
	for _, s := range sets {
		if s.UID == uid {
			if err := semtest.Remove(s.ID); err != nil {
				return err
			}
		}
	}
	return nil
}
