package supervise

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/server"
	"github.com/safe-restart/safe-restart/supervise/systemd"
)

// Acted reports whether any signal was sent or any object removed.
func (r StopReport) Acted() bool {
	return len(r.Orphans) > 0 || r.sent() || ipcguard.CountRemoved(r.Reaped) > 0
}

// Stop stops the server's master and its tree with the ladder, then reaps
// the IPC objects the stopped generation left behind (each with its
// proof). A pidfile that names a dead process means nothing is running; one
// that names another program, or a process younger than the file, is
// refused before anything is signalled.
//
// On a systemd host the ladder still stops the server, and systemd is
// told: a step the unit would count as a failure (SIGKILL), or any step
// when Restart= would start it again, is preceded by the unit's stop job;
// afterwards the unit is inactive, never failed (see systemd.Unit.SettleStopped).
func Stop(ctx context.Context, o StopOptions) (StopReport, error) {
	sig, rc, err := o.Profile.Prepare(ctx, o.Conf, o.Log)
	if err != nil {
		return StopReport{}, err
	}
	if o.unit, err = systemd.UnitOf(ctx, systemd.UnitQuery{Profile: o.Profile, Conf: o.Conf, Name: o.Unit, ProcRoot: o.ProcRoot, Log: o.Log}, rc.PidFile); err != nil {
		return StopReport{}, err
	}
	return o.stop(ctx, sig, rc)
}

// stop is Stop once the server's run config is known.
func (o StopOptions) stop(ctx context.Context, sig *ipcguard.Signature, rc server.RunConfig) (StopReport, error) {
	var rep StopReport
	root := proc.RootOr(o.ProcRoot)
	if !o.DryRun {
		if err := stopPendingBeside(ctx, o, rc); err != nil {
			return rep, err
		}
	}
	master, err := o.Profile.Master(root, rc)
	if errors.Is(err, proc.ErrStalePIDFile) || errors.Is(err, fs.ErrNotExist) {
		// A graceful stop removes the pidfile at once: a master that an
		// interrupted safe-restart was stopping has none.
		pending, perr := pendingStop(o.IntentDir, root, o.Profile, rc.PidFile)
		if perr != nil {
			return rep, perr
		}
		if pending != nil {
			o.Log.Warn().Int("pid", pending.PID).Msg("finishing the stop an interrupted safe-restart began")
			master, err = *pending, nil
		}
	}
	switch {
	case errors.Is(err, proc.ErrStalePIDFile) || errors.Is(err, fs.ErrNotExist):
		o.Log.Info().Str("server", o.Profile.Name).Str("pidfile", rc.PidFile).Msg("not running")
	case err != nil:
		return rep, err
	default:
		rep.Master = &master
		if err := o.stopTree(ctx, root, master, &rep); err != nil {
			return rep, err
		}
	}
	if o.DryRun {
		rep.Planned = true
		return rep, nil
	}
	// Nothing of the server may be left: workers that dead masters left
	// hold its port and its IPC.
	if rep.Orphans, err = stopOrphans(ctx, root, o.Profile.Binary, o.Log); err != nil {
		return rep, err
	}
	if rep.Reaped, err = reapAfterStop(ctx, sig, server.LineageWindow(rc.Elapsed), o); err != nil {
		return rep, err
	}
	var stopped ipcguard.Proc
	if rep.Master != nil {
		stopped = *rep.Master
	}
	return rep, o.unit.SettleStopped(ctx, root, stopped, rep.unitMain, o.Log)
}

func (o StopOptions) stopTree(ctx context.Context, root string, master ipcguard.Proc, rep *StopReport) error {
	procs, err := ipcguard.ReadProcTable(root)
	if err != nil {
		return err
	}
	tree := o.treeOf(procs, master)
	rep.Tree = proc.PIDs(tree)
	ladder := o.Ladder
	if ladder == nil {
		ladder = o.Profile.Ladder(server.DefaultGracefulWait)
	}
	if o.DryRun {
		o.Log.Info().Int("pid", master.PID).Ints("tree", rep.Tree).Str("ladder", fmt.Sprint(ladder)).Bool("dry_run", true).
			Msg("would stop the master with the ladder")
		return nil
	}
	run := proc.LadderRun{ProcRoot: root, Master: master, Members: tree, Linger: o.linger(root, master), Log: o.Log}
	if rep.unitMain, err = o.unit.IsMain(ctx, root, master); err != nil {
		return err // nothing signalled: systemd could not be told
	} else if rep.unitMain {
		run.Before = o.unit.BeforeStep(o.Profile, o.Log)
	}
	if err := saveIntent(o.IntentDir, o.Profile.Name, master, o.successor); err != nil {
		return fmt.Errorf("%w: %w (nothing was signalled)", ErrStateDir, err)
	}
	start := time.Now()
	rep.Steps, err = ladder.Run(ctx, run)
	if err == nil || !rep.sent() {
		clearIntent(o.IntentDir, o.Profile.Name) // stopped, or nothing was signalled
	}
	if err == nil {
		o.Log.Info().Int("pid", master.PID).Dur("took", time.Since(start)).Msg("stopped")
	}
	return err
}

// linger is the profile's Linger (see LadderRun) for master's tree,
// ready once o.lingerReady is.
func (o StopOptions) linger(root string, master ipcguard.Proc) *proc.Linger {
	l := server.LingerOf(o.Profile)
	if l == nil {
		return nil
	}
	l.Ready = o.lingerReady
	l.Tree = func() ([]ipcguard.Proc, error) {
		procs, err := ipcguard.ReadProcTable(root)
		if err != nil {
			return nil, err
		}
		return o.treeOf(procs, master), nil
	}
	return l
}

// treeOf is master's tree (Descendants) without its successor's: the new
// master of a binary upgrade (unitUpgrade) is the old one's child, and the
// old one's stop must leave it serving.
func (o StopOptions) treeOf(procs ipcguard.ProcTable, master ipcguard.Proc) []ipcguard.Proc {
	tree := proc.Descendants(procs, master, o.Profile.Binary)
	if o.successor == nil {
		return tree
	}
	keep := proc.PIDs(proc.Descendants(procs, *o.successor, o.Profile.Binary))
	return slices.DeleteFunc(tree, func(p ipcguard.Proc) bool { return slices.Contains(keep, p.PID) })
}

// sent reports whether a step of the stop sent a signal.
func (r StopReport) sent() bool {
	return slices.ContainsFunc(r.Steps, func(s proc.StepReport) bool { return len(s.Sent) > 0 })
}

// reapAfterStop judges the IPC objects by the server's signature, now that
// its master is gone, and removes the proven orphans. A server that
// creates no IPC (sig nil) has nothing to reap.
func reapAfterStop(ctx context.Context, sig *ipcguard.Signature, window time.Duration, o StopOptions) ([]ipcguard.Outcome, error) {
	if sig == nil {
		return []ipcguard.Outcome{}, nil
	}
	r, err := ipcguard.Inspect(ctx, ipcguard.InspectOptions{Signature: sig, Window: window, LineageDir: o.LineageDir,
		Source: ipcguard.Source{ProcRoot: o.ProcRoot}})
	if err != nil {
		return nil, err
	}
	reaper := ipcguard.Reaper{Source: ipcguard.Source{ProcRoot: o.ProcRoot}, Log: o.Log}
	outs, err := reaper.Reap(ctx, r.Orphans())
	if err == nil && o.LineageDir != "" {
		_, err = ipcguard.PruneLineages(o.LineageDir, sig.Service, r.Procs)
	}
	return outs, err
}

// stopOrphans stops the orphaned workers of dead masters (see Orphans):
// TERM, then KILL, since event orphans ignore TERM. It returns their pids.
func stopOrphans(ctx context.Context, root, exe string, log zerolog.Logger) ([]int, error) {
	procs, err := ipcguard.ReadProcTable(root)
	if err != nil {
		return nil, err
	}
	orphans, err := Orphans(root, procs, exe, nil)
	if err != nil || len(orphans) == 0 {
		return nil, err
	}
	log.Warn().Ints("pids", proc.PIDs(orphans)).Msg("stopping orphaned workers of a dead master (they hold its port and IPC)")
	if err := StopAll(ctx, root, orphans, log); err != nil {
		return proc.PIDs(orphans), fmt.Errorf("stop orphaned workers: %w", err)
	}
	return proc.PIDs(orphans), nil
}

// StopAll stops procs, processes no master answers for (orphaned
// workers, what a dead generation left in its group): TERM to all, then
// KILL to all survivors, since some ignore TERM.
func StopAll(ctx context.Context, root string, procs []ipcguard.Proc, log zerolog.Logger) error {
	ladder := proc.Ladder{{Signal: syscall.SIGTERM, Wait: 3 * time.Second, All: true}, {Signal: syscall.SIGKILL, Wait: 5 * time.Second, All: true}}
	_, err := ladder.Run(ctx, proc.LadderRun{ProcRoot: root, Master: procs[0], Members: procs, Log: log})
	return err
}

// withServer copies the server's identity from a start's options.
func (s StopOptions) withServer(st StartOptions) StopOptions {
	s.Profile, s.Conf, s.ProcRoot, s.unit = st.Profile, st.Conf, st.ProcRoot, st.unit
	return s
}
