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
