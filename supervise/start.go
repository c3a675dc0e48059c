package supervise

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/server"
	"github.com/safe-restart/safe-restart/supervise/sock"
	"github.com/safe-restart/safe-restart/supervise/systemd"
	"github.com/safe-restart/safe-restart/supervise/trial"
	"github.com/safe-restart/safe-restart/supervise/verify"
)

// SysVSetsNeeded is how many free semaphore sets a start must find: Apache
// creates one set per SysV mutex (accept per listen bucket, ssl-cache,
// authdigest, rewrite-map, ...), three with the demo's modules; a start
// that needs more and finds fewer still fails visibly (AH00023 is a fatal
// line), this check only refuses the certain failures.
const SysVSetsNeeded = 8

// Acted reports whether the start changed anything: stopped orphans,
// removed objects, or started a master.
func (r StartReport) Acted() bool {
	return len(r.Orphans) > 0 || len(r.Leftovers) > 0 || ipcguard.CountRemoved(r.Reaped) > 0 || (r.Master != nil && !r.AlreadyRunning)
}

// Start starts the server on clean ground and verifies it (README.md
// invariants 3, 5, 6). Before acting: the config test, and IPC headroom
// (refusals: ConfigTestError, ErrHeadroom). Then: orphaned workers of dead
// masters are stopped (TERM, then KILL: event orphans ignore TERM), the IPC
// of dead generations is reaped with proofs, the server is started, the
// sets the start created are recorded as its lineage, and the result is
// verified: the pidfile names a live master, every listener accepts, the
// health check passes, and no fatal line appeared in the start's output or
// the error log. A server already running is left alone.
//
// On a systemd host the unit's own start job starts the server (see
// systemd.FindUnit), and the verification includes systemd's view of it: the unit
// active, its MainPID the master, every process in its control group.
func Start(ctx context.Context, o StartOptions) (StartReport, error) {
	sig, rc, err := o.Profile.Prepare(ctx, o.Conf, o.Log)
	if err != nil {
		return StartReport{}, err
	}
	if o.unit, err = o.findUnit(ctx, rc); err != nil {
		return StartReport{}, err
	}
	return o.start(ctx, sig, rc)
}

// findUnit finds the server's systemd unit (see systemd.UnitOf).
func (o StartOptions) findUnit(ctx context.Context, rc server.RunConfig) (*systemd.Unit, error) {
	return systemd.UnitOf(ctx, systemd.UnitQuery{Profile: o.Profile, Conf: o.Conf, Name: o.Unit, ProcRoot: o.ProcRoot, Log: o.Log}, rc.PidFile)
}

// start is Start once the server's run config is known.
func (o StartOptions) start(ctx context.Context, sig *ipcguard.Signature, rc server.RunConfig) (StartReport, error) {
	var rep StartReport
	root := proc.RootOr(o.ProcRoot)
	// An interrupted overlap may have left its new master serving, and
	// its pidfile gone: that master is running, the old one is stopped.
	if err := stopPendingBeside(ctx, o.stopOptions(), rc); err != nil {
		return rep, err
	}
	m, err := o.Profile.Master(root, rc)
	switch {
	case err == nil:
		rep.AlreadyRunning, rep.Master = true, &m
		o.Log.Info().Int("pid", m.PID).Msg("already running: not started")
		o.warnUnitModel(ctx, root, m)
		return rep, nil
	case errors.Is(err, fs.ErrNotExist):
	case errors.Is(err, proc.ErrStalePIDFile),
		errors.Is(err, proc.ErrForeignProcess) && !proc.Runs(m, o.Profile.Binary) && m.Comm != proc.CommOf(o.Profile.Binary):
		// Apache's own start reads any pid that kill(pid, 0) reaches (another
		// program, or a zombie not yet reaped) as "already running" and exits
		// 0 without starting. This one is proven not a server: remove it. (A
		// worker of the server, or another instance's master, runs the
		// binary: refused below.)
		o.Log.Warn().Err(err).Msg("removing a stale pidfile")
		if rmErr := os.Remove(rc.PidFile); rmErr != nil {
			return rep, fmt.Errorf("remove stale pidfile: %w", rmErr)
		}
	default:
		// A process named like the server under another binary (a wrong
		// --binary?), one younger than its pidfile (pid reuse, or a clock
		// step), a malformed pidfile: it may be a live server, so starting a
		// second one beside it is refused.
		return rep, err
	}
	if err := o.finishPendingStop(ctx, sig, rc); err != nil {
		return rep, err
	}
	if err := o.ClearGround(ctx, root, sig, rc, &rep); err != nil {
		return rep, err
	}
	if o.stopped {
		return rep, o.startVerified(ctx, root, sig, rc, &rep) // a restart decided on SO_REUSEPORT and checks the ports
	}
	// A master started with SO_REUSEPORT lets the next restart overlap;
	// the same option would let it bind beside a stray listener of its
	// user where a plain start fails, so the ports are checked after.
	o.reuseport = !o.unit.Acts() && reuseportWorks(o, rc)
	if err := o.startVerified(ctx, root, sig, rc, &rep); err != nil || !o.reuseport {
		return rep, err
	}
	if err := aloneOnPorts(root, rep.Listeners); err != nil {
		// A plain start would have failed to bind: so does this one.
		_, serr := o.stopOptions().stop(ctx, sig, rc)
		return rep, errors.Join(fmt.Errorf("%w (the new master was stopped)", err), serr)
	}
	return rep, nil
}

// stopOptions are the options of a stop of the server o starts, with the
// profile's ladder.
func (o StartOptions) stopOptions() StopOptions {
	return StopOptions{Profile: o.Profile, Conf: o.Conf, ProcRoot: o.ProcRoot, LineageDir: o.LineageDir, IntentDir: o.IntentDir, unit: o.unit, Log: o.Log}
}

// finishPendingStop completes a stop that an interrupted safe-restart
// began, so that a start never runs beside a master still stopping.
func (o StartOptions) finishPendingStop(ctx context.Context, sig *ipcguard.Signature, rc server.RunConfig) error {
	so := o.stopOptions()
	pending, err := pendingStop(o.IntentDir, proc.RootOr(o.ProcRoot), o.Profile, rc.PidFile)
	if err != nil || pending == nil {
		return err
	}
	_, err = so.stop(ctx, sig, rc)
	return err
}

// ClearGround stops orphans, reaps dead generations' IPC, removes the
// leftovers that would stop a start, and checks headroom.
func (o StartOptions) ClearGround(ctx context.Context, root string, sig *ipcguard.Signature, rc server.RunConfig, rep *StartReport) error {
	var err error
	if !o.stopped {
		if rep.Orphans, err = stopOrphans(ctx, root, o.Profile.Binary, o.Log); err != nil {
			return err
		}
		if rep.Reaped, err = reapAfterStop(ctx, sig, server.LineageWindow(rc.Elapsed), StopOptions{ProcRoot: o.ProcRoot, LineageDir: o.LineageDir, Log: o.Log}); err != nil {
			return err
		}
	}
	if rep.Leftovers, err = o.Profile.Driver.ClearLeftovers(ctx, rc, o.Log); err != nil {
		return err
	}
	if sig == nil || o.stopped {
		// The server creates no SysV IPC; or a restart checked the
		// headroom before its stop (restartHeadroom, counting the sets
		// the stop frees), and every check here lengthens the gap.
		return nil
	}
	inUse, limit, err := ipcguard.SemHeadroom(ipcguard.Source{ProcRoot: o.ProcRoot})
	if err != nil {
		return err
	}
	if free := limit - inUse; free < SysVSetsNeeded {
		return fmt.Errorf("%w: %d of %d semaphore sets in use, %d free, a start may need %d (kernel.sem SEMMNI)",
			ErrHeadroom, inUse, limit, free, SysVSetsNeeded)
	}
	return nil
}

// startVerified runs the start and verifies what it left.
func (o StartOptions) startVerified(ctx context.Context, root string, sig *ipcguard.Signature, rc server.RunConfig, rep *StartReport) error {
	before, err := ipcguard.Take(ctx, ipcguard.Source{ProcRoot: o.ProcRoot})
	if err != nil {
		return err
	}
	tail := verify.NewLogTail(rc.ServerRoot, rc.ErrorLog)
	defer tail.Close()
	logs := verify.MarkLogDir(verify.LogFilePath(rc.ServerRoot, rc.ErrorLog))
	out, runErr := o.runStarter(ctx)
	rep.StarterOutput = out
	if strings.Contains(out, "already running") {
		return fmt.Errorf("%w: the server's own start said %q and did nothing", ErrStartFailed, strings.TrimSpace(out))
	}
	if runErr != nil {
		if _, err := proc.FromPIDFile(root, rc.PidFile, o.Profile.Binary); err != nil {
			// The starter failed and no master is there: none is coming.
			return o.startFailure(fmt.Errorf("its start command failed: %w", runErr), out, tail, logs)
		}
	}
	master, err := o.awaitMaster(ctx, root, rc.PidFile, tail, nil)
	if err != nil {
		return o.startFailure(err, out, tail, logs)
	}
	rep.Master = &master
	if sig != nil {
		if err := o.RecordLineage(ctx, sig, master, before, rep); err != nil {
			return err
		}
	}
	if err := o.Verify(ctx, root, master, tail, out, rep); err != nil {
		return err
	}
	if !o.unit.Acts() || o.intoUnit {
		return nil // no unit to check (spare the process-table scan), or not yet
	}
	return o.unit.CheckServes(ctx, root, master, o.tree(root, master))
}

// tree is master and its descendants running the server's binary, nil
// when the process table cannot be read.
func (o StartOptions) tree(root string, master ipcguard.Proc) []ipcguard.Proc {
	procs, err := ipcguard.ReadProcTable(root)
	if err != nil {
		return []ipcguard.Proc{master}
	}
	return proc.Descendants(procs, master, o.Profile.Binary)
}

// warnUnitModel logs what in systemd's view of a running server is wrong
// (see systemd.Unit.CheckServes), for a start that leaves it alone.
func (o StartOptions) warnUnitModel(ctx context.Context, root string, master ipcguard.Proc) {
	if !o.unit.Acts() {
		return
	}
	if err := o.unit.Refresh(ctx); err != nil {
		o.Log.Warn().Err(err).Msg("cannot read the unit")
	} else if why := o.unit.ModelError(root, master, o.tree(root, master)); why != "" {
		o.Log.Warn().Str("unit", o.unit.Name).Msg(why + ": systemd does not manage this master (safe-restart restart " + o.Profile.Name + " replaces it with one that the unit starts)")
	}
}

// startFailure is a start that left no master: why, with the server's own
// lines from its starter's output, its error log and the other logs beside
// it (a virtual host's error log) since the start.
func (o StartOptions) startFailure(why error, out string, tail *verify.LogTail, logs verify.LogDirMark) error {
	lines := o.Profile.CauseLines(out + "\n" + tail.Since() + "\n" + logs.Grown(tail.Path))
	return fmt.Errorf("%w: %w; the server said: %s", ErrStartFailed, why, strings.Join(lines, " | "))
}

// runStarter runs the profile's start command and returns its output
// (Apache reports ENOSPC only there).
func (o StartOptions) runStarter(ctx context.Context) (string, error) {
	if o.unit.Acts() && !o.intoUnit {
		return o.unit.RunJob(ctx, proc.RootOr(o.ProcRoot), cmp.Or(o.unitJob, "start"), o.Log) // bounded by systemd.StartTimeout
	}
	// A starter that never returns (a daemon that does not detach, a hung
	// passphrase program) ends after the longer of the start's timeout and
	// a unit's: a restart that finishes its start whatever interrupts it
	// must still end.
	ctx, cancel := context.WithTimeout(ctx, max(o.Timeout, systemd.StartTimeout))
	defer cancel()
	argv := o.Profile.Driver.StartArgv(o.Profile, cmp.Or(o.Conf, o.Profile.Conf))
	if ov, ok := o.Profile.Driver.(server.Overlapper); ok && o.reuseport {
		argv = ov.ReuseportArgv(o.Profile, cmp.Or(o.Conf, o.Profile.Conf))
	}
	if o.handoff != nil {
		return o.handoff.run(ctx, argv)
	}
	if o.intoUnit {
		argv = o.unit.InUnitArgv(proc.RootOr(o.ProcRoot), argv)
		o.Log.Info().Strs("argv", argv).Str("cgroup", o.unit.CGroup).Msg("starting in the unit's control group")
		return startInCGroup(ctx, argv, proc.CgroupV2Dir(o.unit.CGroup))
	}
	o.Log.Info().Strs("argv", argv).Msg("starting")
	return proc.CombinedOutput(ctx, argv)
}

// awaitMaster waits until the pidfile names a live master of the server
// that want accepts (any, when want is nil); an error of want, or a fatal
// line in the error log since the start, ends the wait at once (a master
// that died before writing its pidfile: nginx started detached, its
// starter's exit status says nothing).
func (o StartOptions) awaitMaster(ctx context.Context, root, pidFile string, tail *verify.LogTail, want func(ipcguard.Proc) (bool, error)) (ipcguard.Proc, error) {
	var master ipcguard.Proc
	var last, ended error
	err := proc.PollEvery(ctx, cmp.Or(o.Timeout, 20*time.Second), verify.ReadyPoll, func() (bool, error) {
		m, err := proc.FromPIDFile(root, pidFile, o.Profile.Binary)
		ok := err == nil
		if ok && want != nil {
			if ok, ended = want(m); ended != nil {
				return false, ended
			}
			if !ok {
				err = fmt.Errorf("it names master %d", m.PID)
			}
		}
		if ok {
			master = m
			return true, nil
		}
		last = err
		if fatal := o.Profile.FatalLines(tail.Since()); len(fatal) > 0 {
			ended = fmt.Errorf("no live master in %s, and fatal lines since the start: %s", pidFile, firstLines(fatal))
			return false, ended
		}
		return false, nil
	})
	switch {
	case ended != nil:
		return ipcguard.Proc{}, ended
	case err != nil:
		return ipcguard.Proc{}, fmt.Errorf("no live master in %s: %w", pidFile, last)
	}
	return master, nil
}

// RecordLineage saves which IPC objects this start created.
func (o StartOptions) RecordLineage(ctx context.Context, sig *ipcguard.Signature, master ipcguard.Proc, before ipcguard.Snapshot, rep *StartReport) error {
	after, err := ipcguard.Take(ctx, ipcguard.Source{ProcRoot: o.ProcRoot})
	if err != nil {
		return err
	}
	l := ipcguard.NewLineage(sig.Service, master.Key(), before, after)
	rep.Created = l.Objects
	if o.LineageDir == "" {
		return nil
	}
	return ipcguard.SaveLineage(o.LineageDir, l)
}

// Verify checks the started server, polling until it serves or the
// timeout passes, and fails on any fatal line.
func (o StartOptions) Verify(ctx context.Context, root string, master ipcguard.Proc, tail *verify.LogTail, starterOut string, rep *StartReport) error {
	deadline := time.Now().Add(cmp.Or(o.Timeout, 20*time.Second))
	timedOut, err := proc.Retry(ctx, proc.Wall, deadline, verify.ReadyPoll, func() (bool, error) {
		if fatal := o.Profile.FatalLines(starterOut + tail.Since()); len(fatal) > 0 {
			return true, fmt.Errorf("%w: fatal lines since the start: %s", ErrStartFailed, firstLines(fatal))
		}
		if !proc.SameAlive(root, master) {
			return true, fmt.Errorf("%w: master %d exited after the start; error log: %s", ErrStartFailed, master.PID, firstLines(server.LastLines(tail.Since(), 5)))
		}
		listening, err := sock.ReadListening(root)
		if err != nil {
			return true, err
		}
		rep.Listeners = sock.ListenersOf(root, master.PID, listening)
		err = verify.CheckServes(rep.Listeners, o.healthURL(), o.Profile.Driver.SpeaksHTTP(), 2*time.Second)
		if err == nil {
			err = verify.WorkersAccept(ctx, root, o.Profile, master, rep.Listeners, deadline, o.Log)
		}
		if err == nil {
			o.watch.MarkVerified()
			o.Log.Info().Int("pid", master.PID).Int("listeners", len(rep.Listeners)).Msg("started and verified")
		}
		return err == nil, err
	})
	if timedOut {
		return fmt.Errorf("%w: %w", ErrStartFailed, err)
	}
	return err
}

// healthURL is the caller's health check, else the profile's.
func (o StartOptions) healthURL() string { return cmp.Or(o.HealthURL, o.Profile.HealthURL) }

func firstLines(lines []string) string {
	if len(lines) > 5 {
		lines = lines[:5]
	}
	return fmt.Sprint(lines)
}

// proveGeneration proves, after the verification of a new master started
// beside an old one (rep), that its own generation takes connections
// (verify.CheckGeneration): the health check may have been answered by the old
// one. A server.AcceptProber kind's verification proved it already
// (verify.WorkersAccept).
func (o StartOptions) proveGeneration(ctx context.Context, root string, rep StartReport) error {
	if _, proven := o.Profile.Driver.(server.AcceptProber); proven {
		return nil
	}
	deadline := time.Now().Add(cmp.Or(o.Timeout, 20*time.Second))
	return verify.CheckGeneration(ctx, root, o.Profile, *rep.Master, server.ProbeStart(o.Profile.Driver), rep.Listeners, deadline, o.Log)
}

// ProveRuns proves that the new configuration can run before a reload or
// restart touches master (see trial.Options.ProveRuns).
func (o StartOptions) ProveRuns(ctx context.Context, rc server.RunConfig, master ipcguard.Proc) (*trial.Report, error) {
	return o.trialOptions().ProveRuns(ctx, rc, master)
}

// trialOptions are the start's options for its trial.
func (o StartOptions) trialOptions() trial.Options {
	return trial.Options{Profile: o.Profile, Conf: o.Conf, ProcRoot: o.ProcRoot, Timeout: o.Timeout, NoTrial: o.NoTrial, Log: o.Log}
}

// startCGroup is the cgroup v2 directory a new master starts in: the
// unit's for an overlap in a unit (see unitOverlap), else safe-restart's
// own; "" when unknown.
func (o StartOptions) startCGroup(root string) string {
	if o.intoUnit && o.unit != nil && o.unit.CGroup != "" {
		return proc.CgroupV2Dir(o.unit.CGroup)
	}
	data, err := os.ReadFile(filepath.Join(root, "self", "cgroup"))
	if v2 := proc.CgroupV2(string(data)); err == nil && v2 != "" {
		return proc.CgroupV2Dir(v2)
	}
	return ""
}

// aloneOnPorts fails when a socket other than listeners is bound to one
// of their addresses (see soleListener).
func aloneOnPorts(root string, listeners []sock.Listener) error {
	listening, err := sock.ReadListening(root)
	if err != nil {
		return err
	}
	return soleListener(listeners, listening)
}
