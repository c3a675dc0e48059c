package supervise

import (
	"context"
	"syscall"
	"time"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/server"
)

// drainLadder ends the older generation's processes that outlived the
// drain's bound: TERM (nginx's and Apache's workers close their
// connections and exit), then KILL.
var drainLadder = proc.Ladder{
	{Signal: syscall.SIGTERM, Wait: 5 * time.Second, All: true},
	{Signal: syscall.SIGKILL, Wait: 5 * time.Second, All: true},
}

// drain follows the older generation of a verified reload (old: the
// master's children before the signal) to its end: the ones still alive
// are given the bound (see ReloadOptions.DrainTimeout) to finish their
// requests, then drainLadder ends the survivors. Without a bound they are
// reported and left to finish. It never fails the reload: what it could
// not end is in Left, and logged.
func (o ReloadOptions) drain(ctx context.Context, root string, rc server.RunConfig, old []ipcguard.Proc) *DrainReport {
	log := o.Start.Log
	var alive []ipcguard.Proc
	for _, p := range old {
		if proc.SameAlive(root, p) {
			alive = append(alive, p)
		}
	}
	rep := &DrainReport{Old: proc.PIDs(alive), Left: []int{}}
	rep.Bound, rep.BoundBy = o.drainBound(rc)
	if len(alive) == 0 {
		return rep
	}
	if rep.Bound <= 0 {
		rep.Left = rep.Old
		log.Info().Ints("pids", rep.Old).Msg("the older generation finishes its requests; no drain bound (--drain-timeout), not waited for")
		return rep
	}
	wait := rep.Bound
	if o.DrainTimeout < 0 {
		wait += ownBoundMargin // the server ends them itself at its bound
	}
	log.Info().Ints("pids", rep.Old).Dur("bound", rep.Bound).Str("bound_by", rep.BoundBy).Msg("waiting for the older generation to finish its requests")
	start := time.Now()
	survivors, err := proc.WaitExited(ctx, root, alive, wait)
	rep.Drained = time.Since(start)
	if err != nil || len(survivors) == 0 {
		rep.Left = proc.PIDs(survivors)
		return rep
	}
	log.Warn().Ints("pids", proc.PIDs(survivors)).Dur("bound", rep.Bound).Msg("the older generation outlived its drain bound: ending it")
	rep.Ended, err = drainLadder.Run(ctx, proc.LadderRun{ProcRoot: root, Master: survivors[0], Members: survivors, Log: log})
	if err != nil {
		log.Error().Err(err).Msg("the older generation was not ended")
		survivors, _ = proc.WaitExited(ctx, root, survivors, 0)
		rep.Left = proc.PIDs(survivors)
	}
	return rep
}

// ownBoundMargin is how long past the server's own drain bound its older
// generation is given before the ladder: the server enforces that bound
// itself, and safe-restart steps in only when it did not.
const ownBoundMargin = time.Second

// drainBound is ReloadOptions.DrainTimeout when given (zero or positive),
// else the server's own bound, with where it came from.
func (o ReloadOptions) drainBound(rc server.RunConfig) (time.Duration, string) {
	if o.DrainTimeout >= 0 {
		return o.DrainTimeout, "--drain-timeout"
	}
	return rc.DrainBound, rc.DrainSetting
}
