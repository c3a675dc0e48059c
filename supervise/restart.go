package supervise

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/server"
	"github.com/safe-restart/safe-restart/supervise/sock"
	"github.com/safe-restart/safe-restart/supervise/trial"
	"github.com/safe-restart/safe-restart/supervise/verify"
)

// Restart runs the config test, the proof that the new configuration runs
// when a master is running (see proveRuns) and an IPC headroom check
// first (failures return a *ConfigTestError, a *trial.Error, trial.ErrCannotBind
// or ErrHeadroom and leave the running server untouched), then Stop and
// Start with the run config that test read. s and st must name the same
// profile and config; st's are used.
func Restart(ctx context.Context, s StopOptions, st StartOptions) (RestartReport, error) {
	sig, rc, err := st.Profile.Prepare(ctx, st.Conf, st.Log)
	if err != nil {
		return RestartReport{}, err
	}
	if st.unit, err = st.findUnit(ctx, rc); err != nil {
		return RestartReport{}, err
	}
	var proof *trial.Report
	var w *verify.Watch
	if master, err := st.Profile.Master(proc.RootOr(st.ProcRoot), rc); err == nil {
		proof, err = st.ProveRuns(ctx, rc, master)
		if cerr := ctx.Err(); cerr != nil {
			err = interruptedUntouched(cerr) // nothing was touched, nothing will be
		}
		if err != nil {
			return RestartReport{Trial: proof}, err
		}
		if !s.DryRun {
			w = st.watchClients(proc.RootOr(st.ProcRoot), master)
			st.watch = w
		}
	}
	rep, err := restart(ctx, s, st, sig, rc)
	if err != nil {
		w.Unverified()
	}
	if rep.Receipt = w.Stop(); rep.Receipt != nil {
		rep.Receipt.Hooks = rep.Hooks
	}
	if err != nil && errors.Is(err, context.Canceled) && !errors.Is(err, errUntouched) && !rep.Acted() {
		err = interruptedUntouched(err) // cancelled in a check before the stop
	}
	rep.Trial = proof
	return rep, err
}

// restart is Restart once the server's run config is known. A server that
// can overlap (see server.Overlapper) is replaced by a new master started beside
// the running one on SO_REUSEPORT; a server that can inherit its sockets
// (see server.Inheritor) by a new master started beside the running one on the
// sockets taken from it. Otherwise, or when neither can work, the master
// is stopped and a new one started (on the held sockets when there are).
// With no held sockets, and no ladder the caller chose, that stop of a
// server whose graceful stop closes its listeners long before it exits
// (server.ClosesEarly: Apache) skips the graceful step: nothing accepts between
// the stop and the start, and the graceful stop would stretch that gap to
// its own length (README.md invariant 9).
func restart(ctx context.Context, s StopOptions, st StartOptions, sig *ipcguard.Signature, rc server.RunConfig) (RestartReport, error) {
	s = s.withServer(st)
	if err := stopPendingBeside(ctx, s, rc); err != nil {
		return RestartReport{}, err
	}
	if st.unit.Acts() {
		return unitRestart(ctx, s, st, sig, rc)
	}
	st.reuseport = reuseportWorks(st, rc)
	rep, handled, err := overlapRestart(ctx, s, st, sig, rc)
	if handled || err != nil {
		return rep, err
	}
	if err := restartHeadroom(ctx, st, sig); err != nil {
		return rep, err
	}
	if !s.DryRun {
		h, why := holdListeners(proc.RootOr(st.ProcRoot), st.Profile, st.NoHandoff, rc, st.Log)
		defer h.release()
		rep.Handoff = handoffReport(h, why, st)
		st.handoff = h
	}
	if st.handoff != nil {
		if why := handoffOverlapBlocker(proc.RootOr(st.ProcRoot), st.handoff, sig, st); why != "" {
			st.Log.Info().Str("reason", why).Msg("no overlap: the old master stops before the new one starts (the held sockets queue new connections meanwhile)")
			rep.OverlapSkipped = why
		} else {
			st.Log.Info().Int("old", st.handoff.master.PID).Msg("starting a new master on the held sockets beside the old one, then stopping the old one gracefully")
			return rep, replaceBeside(ctx, s, st, sig, rc, st.handoff.master, nil, &rep)
		}
	}
	if _, slow := st.Profile.Driver.(server.ClosesEarly); slow && st.handoff == nil && s.Ladder == nil {
		s.Ladder = s.Profile.Ladder(0)
		st.Log.Info().Msg("no overlap and no held sockets: the old master stops at once (TERM, as apache2 -k stop), not gracefully: " +
			"its graceful stop closes the listeners first, and clients would be refused until the requests in flight finish and the new master listens")
	}
	if err := ctx.Err(); err != nil {
		return rep, interruptedUntouched(err)
	}
	// Nothing accepts between the stop and the start of a running master.
	_, noMaster := st.Profile.Master(proc.RootOr(st.ProcRoot), rc)
	gap := st.handoff == nil && !s.DryRun && noMaster == nil
	if gap {
		if err := st.preStop(ctx, &rep); err != nil {
			return rep, err
		}
	}
	st.watch.MarkActed()
	ctx, end := finishing(ctx, st.Log, "the old master is being stopped, and the new one started")
	defer end(nil)
	rep.Stop, err = s.stop(ctx, sig, rc)
	if st.handoff != nil {
		st.handoff.afterStop(rep.Handoff)
	}
	if err != nil {
		return rep, err
	}
	// The stop just stopped orphans and reaped; the new master gets
	// SO_REUSEPORT so that the next restart can overlap.
	st.stopped = true
	if rep.Start, err = st.start(ctx, sig, rc); err != nil || rep.Start.Master == nil {
		return rep, err
	}
	if err := aloneOnPorts(proc.RootOr(st.ProcRoot), rep.Start.Listeners); err != nil {
		return rep, err
	}
	end(rep.Start.Master)
	if gap {
		return rep, st.postStart(ctx, &rep)
	}
	return rep, nil
}

// Acted reports whether the restart changed anything: a signal sent, an
// object removed, a master started, an overlap begun (the old master's
// pidfile moved aside), or the unit's restart job queued.
func (r RestartReport) Acted() bool {
	return r.Stop.Acted() || r.Start.Acted() || r.Overlap || r.UnitJob != ""
}

// unitRestart is a restart on a systemd host, from outside the unit. The
// new master must be one systemd follows: when the running master is the
// unit's main process, Apache's and nginx's are replaced by an overlap in
// the unit (unitOverlap). Otherwise (php-fpm's unit is Type=notify with
// NotifyAccess=main: only its main process may name a successor; or the
// overlap cannot work here) the unit's own restart job (systemctl
// restart: ExecStop=, the unit's kill settings, ExecStart=) replaces the
// master, which clients see exactly as the naive systemctl restart; then
// the usual verification, and what the stopped generation left (orphans,
// IPC) is cleared. With a ladder the caller
// chose (--ladder, --graceful-timeout), or when the running master is not
// the unit's main process (one started outside it) or none runs, the
// ladder stops it and the unit's start job starts the new one.
func unitRestart(ctx context.Context, s StopOptions, st StartOptions, sig *ipcguard.Signature, rc server.RunConfig) (RestartReport, error) {
	rep := RestartReport{OverlapSkipped: "systemd starts the new master (" + st.unit.Name + "): it follows only a master its unit starts"}
	if err := restartHeadroom(ctx, st, sig); err != nil {
		return rep, err
	}
	root := proc.RootOr(st.ProcRoot)
	old, err := st.Profile.Master(root, rc)
	running, main := err == nil, false
	if err == nil {
		if main, err = st.unit.IsMain(ctx, root, old); err != nil {
			return rep, err
		}
	}
	if main && s.Ladder == nil && !s.DryRun {
		st.reuseport = reuseportWorks(st, rc)
		r, handled, err := unitOverlap(ctx, s, st, sig, rc, old)
		if handled || err != nil {
			return r, err
		}
		if r.OverlapSkipped != "" {
			rep.OverlapSkipped = r.OverlapSkipped
		}
	}
	if !main || s.Ladder != nil || s.DryRun {
		st.Log.Info().Str("unit", st.unit.Name).Msg("restarting through systemd: the ladder stops the old master, then the unit's start job starts the new one")
		if err := ctx.Err(); err != nil {
			return rep, interruptedUntouched(err)
		}
		gap := !s.DryRun && running
		if gap {
			if err := st.preStop(ctx, &rep); err != nil {
				return rep, err
			}
		}
		st.watch.MarkActed()
		ctx, end := finishing(ctx, st.Log, "the old master is being stopped, and the new one started")
		defer end(nil)
		if rep.Stop, err = s.stop(ctx, sig, rc); err != nil || s.DryRun {
			return rep, err
		}
		st.stopped = true
		if rep.Start, err = st.start(ctx, sig, rc); err != nil {
			return rep, err
		}
		end(rep.Start.Master)
		if gap {
			return rep, st.postStart(ctx, &rep)
		}
		return rep, nil
	}
	if err := st.preStop(ctx, &rep); err != nil {
		return rep, err
	}
	st.watch.MarkActed()
	st.Log.Info().Str("unit", st.unit.Name).Int("old", old.PID).Msg("restarting through systemd: systemctl restart " + st.unit.Name)
	tree := st.tree(root, old)
	rep.Stop.Master, rep.Stop.Tree = &old, proc.PIDs(tree)
	st.unitJob, st.stopped, rep.UnitJob = "restart", true, "restart"
	if err := st.startVerified(ctx, root, sig, rc, &rep.Start); err != nil {
		return rep, err
	}
	if alive := stillAlive(root, tree); len(alive) > 0 {
		return rep, fmt.Errorf("%w: systemd's restart left processes of the old generation running: %v", proc.ErrStillAlive, alive)
	}
	if rep.Stop.Orphans, err = stopOrphans(ctx, root, st.Profile.Binary, st.Log); err != nil {
		return rep, err
	}
	if rep.Stop.Reaped, err = reapAfterStop(ctx, sig, server.LineageWindow(rc.Elapsed), s); err != nil {
		return rep, err
	}
	return rep, st.postStart(ctx, &rep)
}

// stillAlive are the pids of procs that have not exited.
func stillAlive(root string, procs []ipcguard.Proc) []int {
	var out []int
	for _, p := range procs {
		if proc.SameAlive(root, p) {
			out = append(out, p.PID)
		}
	}
	return out
}

// handoffReport reports and logs whether the restart holds the sockets:
// the held listeners, or why it falls back to a plain restart.
func handoffReport(h *handoff, why string, st StartOptions) *HandoffReport {
	if h != nil {
		st.Log.Info().Strs("listeners", sock.Addrs(h.Listeners())).Msg("holding the listening sockets through the restart: the new master inherits them")
		return &HandoffReport{Held: h.Listeners()}
	}
	ev := st.Log.Warn()
	if strings.HasPrefix(why, noMasterToHold) {
		ev = st.Log.Info() // nothing serves: nothing to refuse
	}
	ev.Str("reason", why).Msg("plain restart, no socket handoff: connections are refused between the stop and the start")
	return &HandoffReport{Held: []sock.Listener{}, Fallback: why}
}

// restartHeadroom refuses a restart whose start would find fewer than
// SysVSetsNeeded free semaphore sets even after the stop freed every set of
// the service (the stopped master's own, and those reaped as leaked), so
// that a restart never stops a server it cannot start again (README.md
// invariant 5).
func restartHeadroom(ctx context.Context, o StartOptions, sig *ipcguard.Signature) error {
	if sig == nil {
		return nil // the server creates no SysV IPC
	}
	r, err := ipcguard.Inspect(ctx, ipcguard.InspectOptions{Signature: sig, Source: ipcguard.Source{ProcRoot: o.ProcRoot}})
	if err != nil {
		return err
	}
	freeable := 0
	for _, j := range r.Judgements {
		if j.Kind == ipcguard.KindSem && j.Verdict != ipcguard.Foreign {
			freeable++
		}
	}
	free := r.Snapshot.SemSetsFree()
	if free+freeable < SysVSetsNeeded {
		return fmt.Errorf("%w: %d of %d semaphore sets in use; even after the stop frees the service's %d, a start would find %d free and may need %d (kernel.sem SEMMNI)",
			ErrHeadroom, r.Snapshot.Usage.SemSets, r.Snapshot.Limits.SEMMNI, freeable, free+freeable, SysVSetsNeeded)
	}
	return nil
}

// watchClients starts the probes of an operation's receipt on master's
// listeners and health check (see verify.Receipt), right before it acts;
// nil (no receipt) with NoReceipt or when master holds no listener.
func (st StartOptions) watchClients(root string, master ipcguard.Proc) *verify.Watch {
	if st.NoReceipt {
		return nil
	}
	listening, err := sock.ReadListening(root)
	if err != nil {
		st.Log.Warn().Err(err).Msg("no receipt: the listening sockets cannot be read")
		return nil
	}
	ls := sock.ListenersOf(root, master.PID, listening)
	if len(ls) == 0 {
		return nil
	}
	return verify.StartWatch(ls, st.Profile.Driver.SpeaksHTTP(), cmp.Or(st.HealthURL, st.Profile.HealthURL))
}
