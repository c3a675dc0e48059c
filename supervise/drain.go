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
// master's children before the signal) to its end: with a bound
// (ReloadOptions.DrainTimeout) the ones still alive are given it to finish
// their requests, then drainLadder ends the survivors. Without one they are
// reported and left to finish, as the server's own graceful reload leaves
// them (nginx's worker_shutdown_timeout and php-fpm's
// process_control_timeout, which the servers enforce themselves, are named
// in the report). It never fails the reload: what it could not end is in
// Left, and logged.
func (o ReloadOptions) drain(ctx context.Context, root string, rc server.RunConfig, old []ipcguard.Proc) *DrainReport {
	log := o.Start.Log
	var alive []ipcguard.Proc
	for _, p := range old {
		if proc.SameAlive(root, p) {
			alive = append(alive, p)
		}
	}
	rep := &DrainReport{Old: proc.PIDs(alive), Left: []int{}, Bound: max(o.DrainTimeout, 0), BoundBy: "--drain-timeout"}
	if o.DrainTimeout <= 0 {
		rep.Bound, rep.BoundBy = rc.DrainBound, rc.DrainSetting
	}
	if len(alive) == 0 {
		return rep
	}
	if o.DrainTimeout <= 0 {
		rep.Left = rep.Old
		log.Info().Ints("pids", rep.Old).Str("server_bound", rep.BoundBy).Dur("bound", rep.Bound).
			Msg("the older generation finishes its requests; not waited for (--drain-timeout bounds it)")
		return rep
	}
	log.Info().Ints("pids", rep.Old).Dur("bound", rep.Bound).Msg("waiting for the older generation to finish its requests")
	start := time.Now()
	survivors, err := proc.WaitExited(ctx, root, alive, rep.Bound)
	rep.Drained = time.Since(start)
	if err != nil || len(survivors) == 0 {
		rep.Left = proc.PIDs(survivors)
		return rep
	}
	log.Warn().Ints("pids", proc.PIDs(survivors)).Dur("bound", rep.Bound).Msg("the older generation outlived --drain-timeout: ending it")
	// No master: every step goes to all, and a survivor whose pid was
	// reused meanwhile is skipped, never signalled.
	rep.Ended, err = drainLadder.Run(ctx, proc.LadderRun{ProcRoot: root, Members: survivors, Log: log})
	if err != nil {
		log.Error().Err(err).Msg("the older generation was not ended")
		survivors, _ = proc.WaitExited(ctx, root, survivors, 0)
		rep.Left = proc.PIDs(survivors)
	}
	return rep
}
