//go:build linux

package main

import (
	"fmt"
	"time"
)

// Names of the reference rows, measured in the same run as the restarts,
// against which a restart's longest gap is judged.
const (
	noiseFloor = "no restart (noise floor)"
	ownStart   = "own start: exec to first answer"
)

// noiseWait is how long the noise floor waits: about as long as a
// safe-restart restart takes (the longest gap grows with the time
// watched, so a shorter window would flatter the floor).
const noiseWait = time.Second

// noiseFloorMethod restarts nothing: it waits under the same load, so that
// its longest gap is what the load alone costs the prober.
func noiseFloorMethod() method {
	return method{name: noiseFloor, do: func() error {
		time.Sleep(noiseWait)
		return nil
	}}
}

// ownStartMethod stops the server with stop (probed, not timed) and then
// times the server's own start: from the exec of its start command to the
// first successful answer. Its longest gap spans the stop as well.
func ownStartMethod(stop, start func() error) method {
	return method{name: ownStart, stop: stop, do: start}
}

// printReference prints the server's own start and the noise floor's
// longest gap (medians), if both rows ran.
func printReference(server string, results map[string][]result) {
	own, floor := results[ownStart], results[noiseFloor]
	if len(own) == 0 || len(floor) == 0 {
		return
	}
	fmt.Printf("%s's own start (exec to first answer, median): %s; longest gap of the noise floor: %s\n", server,
		median(own, func(r result) time.Duration { return r.took }), median(floor, func(r result) time.Duration { return r.gap }))
}
