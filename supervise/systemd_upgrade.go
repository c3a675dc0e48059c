package supervise

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/server"
	"github.com/safe-restart/safe-restart/supervise/verify"
)

// upgradeNoticed bounds the wait for the old master to act on the
// upgrade signal (rename its pidfile): one that ignores it (nginx does
// while an upgrade is under way, or in a master whose parent never changed
// since its start) leaves the unit's restart job to do the restart.
const upgradeNoticed = 2 * time.Second

// upgradeBeside restarts the unit's master old through the server's own
// binary upgrade (see server.Upgrader), with no moment without a listener: the
// new master, a child of the old one, is in the unit from its first
// instruction; it is verified as every new master is (pidfile, listeners,
// health check, no fatal line, its own workers take connections); then the
// old master stops gracefully. A new master that fails is stopped; the old
// one, which never stopped serving, renames its pidfile back. handled is
// false, nothing changed, when the old master did not act on the signal.
func upgradeBeside(ctx context.Context, s StopOptions, st StartOptions, sig *ipcguard.Signature, rc server.RunConfig, old ipcguard.Proc, k server.Upgrader, rep *RestartReport) (handled bool, err error) {
	root := proc.RootOr(st.ProcRoot)
	st.Log.Info().Int("old", old.PID).Str("unit", st.unit.Name).
		Msg("restarting in the unit through the server's binary upgrade (" + proc.SigName(k.UpgradeSignal()) + "): the new master starts beside the old one as its child, then the old one stops gracefully")
	upgraded := k.UpgradedPIDFile(rc.PidFile)
	if fileExists(upgraded) {
		// An upgrade under way (the master ignores the signal then), or one
		// whose old master was killed: this file is not this run's.
		st.Log.Warn().Str("path", upgraded).Msg("an earlier upgrade's pidfile is there: the unit's restart job replaces the master")
		return false, nil
	}
	tail := verify.NewLogTail(rc.ServerRoot, rc.ErrorLog)
	defer tail.Close()
	if err := saveIntent(s.IntentDir, s.Profile.Name, old, nil); err != nil {
		return true, err
	}
	st.watch.MarkActed()
	if acted, err := signalUpgrade(ctx, root, old, k, rc.PidFile); !acted {
		clearIntent(s.IntentDir, s.Profile.Name)
		st.Log.Warn().Err(err).Int("pid", old.PID).Msg("no upgrade (the master renamed no pidfile): the unit's restart job replaces the master")
		return false, nil
	}
	rep.Overlap = true
	master, err := st.awaitMaster(ctx, root, rc.PidFile, tail, upgradedMaster(old, rc.PidFile, upgraded, tail))
	if err == nil {
		rep.Start.Master = &master
		err = saveIntent(s.IntentDir, s.Profile.Name, old, &master)
	}
	if err == nil {
		err = st.Verify(ctx, root, master, tail, "", &rep.Start)
	}
	if err == nil {
		err = st.proveGeneration(ctx, root, rep.Start)
	}
	if err != nil {
		return true, abandonUpgrade(ctx, s, root, old, rep.Start.Master, rc.PidFile, upgraded, err)
	}
	rep.Stop.Master = &old
	err = stopOldMaster(context.WithoutCancel(ctx), s, root, old, master, rc.PidFile, &rep.Stop)
	if err == nil {
		err = removeAside(root, upgraded, old)
	}
	if err == nil {
		err = verifySuccessor(root, st, master, &rep.Start)
	}
	if err == nil {
		rep.Stop.Orphans, err = stopOrphans(ctx, root, s.Profile.Binary, s.Log)
	}
	if err == nil {
		rep.Stop.Reaped, err = reapAfterStop(ctx, sig, server.LineageWindow(rc.Elapsed), s)
	}
	return true, err
}

// signalUpgrade sends old the upgrade signal and reports whether it acted
// on it within upgradeNoticed (see upgradeWatch); the error says why
// nothing was sent (the pidfile's directory cannot be watched, or the
// signal not sent).
func signalUpgrade(ctx context.Context, root string, old ipcguard.Proc, k server.Upgrader, pidFile string) (bool, error) {
	w, err := watchRenames(pidFile)
	if err != nil {
		return false, fmt.Errorf("watch the pidfile's directory, to tell a failed upgrade from an ignored one: %w", err)
	}
	defer w.close()
	u := upgradeWatch{w: w, upgraded: k.UpgradedPIDFile(pidFile)}
	if err := proc.SignalProc(root, old, k.UpgradeSignal()); err != nil {
		return false, err
	}
	// Sent: whether the master acted is known only by waiting, interrupted
	// or not (a master that acted late would start a second master).
	_ = proc.PollUntil(context.WithoutCancel(ctx), upgradeNoticed, func() (bool, error) { return u.acted(), nil }) // a timeout: acted says no
	return u.acted(), nil
}

// upgradeWatch tells whether a master acted on its upgrade signal: it
// renamed the pidfile to upgraded, where the file may still be, or from
// where it may be back already (the new master failed at once), which the
// watch of the pidfile's directory sees (renameWatch).
type upgradeWatch struct {
	w        *renameWatch
	upgraded string
	seen     bool
}

// acted reports whether the master acted on the signal, so far.
func (u *upgradeWatch) acted() bool {
	u.seen = u.seen || fileExists(u.upgraded) || u.w.moved()
	return u.seen
}

// upgradedMaster accepts the master the pidfile names once it is old's
// child (the upgrade's new master), and fails once the pidfile names old
// again with upgraded gone (the new master died and old renamed its file
// back); see StartOptions.awaitMaster.
func upgradedMaster(old ipcguard.Proc, pidFile, upgraded string, tail *verify.LogTail) func(ipcguard.Proc) (bool, error) {
	return func(m ipcguard.Proc) (bool, error) {
		if m.PID == old.PID && !fileExists(upgraded) {
			return false, fmt.Errorf("the new master exited: %s names the old master %d again; error log: %s", pidFile, old.PID, firstLines(server.LastLines(tail.Since(), 5)))
		}
		return m.PID != old.PID && m.PPID == old.PID, nil
	}
}

// upgradeSettles bounds the wait, when an upgrade is abandoned, for the
// old master to take its pidfile back.
const upgradeSettles = 10 * time.Second

// abandonUpgrade undoes an upgrade whose new master failed, or is not
// known yet (a slow start, an interruption): until the old master has
// renamed its pidfile back (its new binary exited), every new master the
// pidfile names, a child of old, is stopped with the ladder. The old
// master never stopped serving. A pidfile still not back after
// upgradeSettles is left as it is, and the error says so.
func abandonUpgrade(ctx context.Context, s StopOptions, root string, old ipcguard.Proc, started *ipcguard.Proc, pidFile, upgraded string, cause error) error {
	cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	defer clearIntent(s.IntentDir, s.Profile.Name) // the stops below cleared it too: nothing is left to finish
	var errs []error
	stop := func(m ipcguard.Proc) {
		s.Log.Warn().Int("pid", m.PID).Msg("stopping the new master of an upgrade that failed")
		var r StopReport
		errs = append(errs, s.stopTree(cleanup, root, m, &r))
	}
	if started != nil && proc.SameAlive(root, *started) {
		stop(*started)
	}
	back := proc.PollUntil(cleanup, upgradeSettles, func() (bool, error) {
		if m, err := proc.FromPIDFile(root, pidFile, s.Profile.Binary); err == nil && m.PID != old.PID && m.PPID == old.PID {
			stop(m) // a new master that came up meanwhile
		}
		return !fileExists(upgraded), nil
	})
	if back != nil {
		errs = append(errs, fmt.Errorf("%s is still there (the old master %d has not taken its pidfile back): %w", upgraded, old.PID, back))
	} else {
		errs = append(errs, ensurePIDFile(pidFile, old.PID))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w; undoing it: %w", ErrStartFailed, cause, err)
	}
	return fmt.Errorf("%w: %w; the old master %d still serves", ErrStartFailed, cause, old.PID)
}
