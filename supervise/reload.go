package supervise

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"time"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/growth"
	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/server"
	"github.com/safe-restart/safe-restart/supervise/sock"
	"github.com/safe-restart/safe-restart/supervise/verify"
)

// Reload asks the running master for a new generation in place and
// verifies it (README.md invariant 6): the master is alive and the same
// process, it logged the new generation, new children serve, the health
// check passes, and no fatal line appeared since the signal. Before acting:
// the config test (a *ConfigTestError, nothing touched), then the proof
// that the new configuration runs (see proveRuns: a *trial.Error or
// trial.ErrCannotBind, nothing touched). When a reload
// would be unsafe (too few free semaphore sets for the mutexes it
// recreates) a verified restart is done instead, saying why. When the
// server was not running, or the reload killed it (a runtime failure Apache
// reports only after its config test passed: ENOSPC on a mutex, exhausted
// pthread keys), its leftovers are cleared and a verified start brings it
// back: Recovered is set.
func Reload(ctx context.Context, o ReloadOptions) (rep ReloadReport, err error) {
	rep = ReloadReport{PthreadKeys: -1, OldChildren: []int{}, NewChildren: []int{}}
	st := o.Start
	root := proc.RootOr(st.ProcRoot)
	sig, rc, err := st.Profile.Prepare(ctx, st.Conf, st.Log)
	if err != nil {
		return rep, err
	}
	if st.unit, err = st.findUnit(ctx, rc); err != nil {
		return rep, err
	}
	o.Start = st
	if err := stopPendingBeside(ctx, o.Stop.withServer(st), rc); err != nil {
		return rep, err
	}
	master, err := st.Profile.Master(root, rc)
	switch {
	case errors.Is(err, proc.ErrStalePIDFile), errors.Is(err, fs.ErrNotExist):
		return o.recover(ctx, sig, rc, rep, "the server was not running")
	case err != nil:
		return rep, err
	}
	rep.Master = &master
	if rep.Trial, err = st.ProveRuns(ctx, rc, master); err != nil {
		return rep, err
	}
	if err := ctx.Err(); err != nil {
		return rep, interruptedUntouched(err) // nothing was touched, nothing will be
	}
	w := st.watchClients(root, master)
	o.Start.watch, st.watch = w, w
	defer func() {
		if err != nil {
			w.Unverified()
		}
		if rep.Receipt = w.Stop(); rep.Receipt != nil && rep.Restart != nil {
			rep.Receipt.Hooks = rep.Restart.Hooks
		}
	}()
	why, err := o.UnsafeReload(ctx, master, sig, rc, &rep)
	if err != nil {
		return rep, err
	}
	if why != "" {
		rep.Fallback = why + "; restarting instead"
		st.Log.Warn().Msg(rep.Fallback)
		r, err := restart(ctx, o.Stop, st, sig, rc) // the config test already ran
		rep.Restart = &r
		return rep, err
	}
	rep, err = o.signalAndVerify(ctx, root, sig, rc, master, rep)
	if err == nil && rep.Restart == nil {
		rep.Receipt = w.Stop() // the operation is verified: the drain is not in its receipt
		o.recordSample(root, rc, *rep.Master)
		rep.Drain = o.drain(ctx, root, rc, rep.old)
	}
	return rep, err
}

// UnsafeReload says why a reload of master should be a restart instead, or
// "" when it is safe.
func (o ReloadOptions) UnsafeReload(ctx context.Context, master ipcguard.Proc, sig *ipcguard.Signature, rc server.RunConfig, rep *ReloadReport) (string, error) {
	if o.Full {
		return "a full restart was asked for (--full)", nil
	}
	keys, err := proc.PthreadKeysInUse(proc.RootOr(o.Start.ProcRoot), master.PID)
	if err != nil {
		o.Start.Log.Warn().Err(err).Msg("cannot count the master's pthread keys; reloading without that check")
	} else {
		rep.PthreadKeys = keys
		if keys >= proc.PthreadKeysMax-PthreadKeysMargin {
			return fmt.Sprintf("master %d uses %d of %d pthread keys: a reload that creates one more kills it (libgomp)", master.PID, keys, proc.PthreadKeysMax), nil
		}
	}
	if sig != nil {
		free, err := semFree(o.Start.ProcRoot)
		if err != nil {
			return "", err
		}
		if free < SysVSetsNeeded {
			return fmt.Sprintf("only %d semaphore sets free: a reload recreates the mutexes and could die of ENOSPC (AH00023)", free), nil
		}
	}
	if o.MaxReloads > 0 {
		n, source := o.reloadCount(ctx, master, rc)
		switch {
		case n < 0:
			o.Start.Log.Warn().Msg("this server does not log its reloads: --max-reloads cannot be applied")
		case n >= o.MaxReloads:
			return fmt.Sprintf("master %d has been reloaded %d times (budget %d, counted by its %s)", master.PID, n, o.MaxReloads, source), nil
		}
	}
	return "", nil
}

// PthreadKeysMargin is how many free pthread keys a reload must leave: a
// reload loads every module again, and each may create a few.
const PthreadKeysMargin = 64

func semFree(procRoot string) (int, error) {
	inUse, limit, err := ipcguard.SemHeadroom(ipcguard.Source{ProcRoot: procRoot})
	return limit - inUse, err
}

// signalAndVerify sends the reload signal and verifies the new generation,
// recovering the server if the reload killed it.
func (o ReloadOptions) signalAndVerify(ctx context.Context, root string, sig *ipcguard.Signature, rc server.RunConfig,
	master ipcguard.Proc, rep ReloadReport,
) (ReloadReport, error) {
	st := o.Start
	verr := o.ReloadVerified(ctx, root, rc, master, &rep)
	if verr == nil || errors.Is(verr, server.ErrReloadRejected) || rep.Signal == "" {
		return rep, verr
	}
	if ctx.Err() != nil {
		// Interrupted (SIGINT, SIGTERM): the reload was not judged, so the
		// server is left as it is; stopping it now could leave it down.
		return rep, fmt.Errorf("reload of master %d sent, verification interrupted: %w", master.PID, ctx.Err())
	}
	if errors.Is(verr, errNotServingBefore) && o.masterLives(root, rc, master) {
		return rep, fmt.Errorf("%w: its master lives, so it is not restarted (safe-restart restart does that)", verr)
	}
	st.Log.Error().Err(verr).Msg("the reload left the server unhealthy: recovering with a verified restart")
	// Whatever is left (a master alive but not serving a new generation, or
	// the workers of one that died) is stopped before the start.
	stopRep, err := o.Stop.withServer(st).stop(ctx, sig, rc)
	if err != nil {
		return rep, fmt.Errorf("%w: %w; stopping it failed: %w", ErrReloadKilled, verr, err)
	}
	rep.Restart = &RestartReport{Stop: stopRep}
	return o.recover(ctx, sig, rc, rep, verr.Error())
}

// ReloadVerified sends master the reload signal and verifies the new
// generation (see verifyGeneration); it recovers nothing. rep.Signal is
// set once the signal was sent.
func (o ReloadOptions) ReloadVerified(ctx context.Context, root string, rc server.RunConfig, master ipcguard.Proc, rep *ReloadReport) error {
	st := o.Start
	procs, err := ipcguard.ReadProcTable(root)
	if err != nil {
		return err
	}
	rep.old = proc.Descendants(procs, master, st.Profile.Binary)[1:]
	rep.OldChildren = proc.PIDs(rep.old)
	tail := verify.NewMasterLogTail(root, master.PID, rc.ServerRoot, rc.ErrorLog)
	defer tail.Close()
	// A server that does not serve before the reload will not serve after
	// it either: that is not the reload's doing.
	listening, err := sock.ReadListening(root)
	if err != nil {
		return err
	}
	before := verify.CheckServes(sock.ListenersOf(root, master.PID, listening), st.healthURL(), st.Profile.Driver.SpeaksHTTP(), 2*time.Second)
	if before != nil {
		st.Log.Warn().Err(before).Int("pid", master.PID).Msg("the server does not serve before the reload")
	}
	signal := st.Profile.ReloadSignal(o.Hard)
	st.watch.MarkActed()
	sent := time.Now()
	if err := proc.SignalProc(root, master, signal); err != nil {
		return err
	}
	rep.Signal = proc.SigName(signal)
	st.Log.Info().Int("pid", master.PID).Str("signal", rep.Signal).Msg("sent reload signal, verifying the new generation")
	verr := o.verifyGeneration(ctx, root, rc, master, sent, tail, rep)
	if verr != nil && before != nil && !errors.Is(verr, server.ErrReloadRejected) {
		return fmt.Errorf("%w; %w (%w)", verr, errNotServingBefore, before)
	}
	return verr
}

// errNotServingBefore marks a reload whose server failed its health check
// before the signal too: not the reload's doing, so a master that lives is
// not restarted for it.
var errNotServingBefore = errors.New("it did not serve before the reload either")

// verifyGeneration waits until the server logged a new generation, its
// master (the same one, or for a server that re-executes, the one its
// pidfile names now) has new children, and it serves; it fails at once on
// a fatal line or a dead master that is not replaced.
func (o ReloadOptions) verifyGeneration(ctx context.Context, root string, rc server.RunConfig, old ipcguard.Proc, sent time.Time, tail *verify.LogTail, rep *ReloadReport) error {
	st := o.Start
	k := st.Profile.Driver
	deadline := time.Now().Add(cmp.Or(st.Timeout, 20*time.Second))
	if !tail.Readable() {
		st.Log.Warn().Msg("the error log is not a file this tool can read (piped or syslog): the new generation is judged by its master, new children and the health check alone")
	}
	_, err := proc.Retry(ctx, proc.Wall, deadline, verify.ReadyPoll, func() (bool, error) {
		logged := tail.Since()
		// The kind reads the log first: a server that refused the new
		// configuration says why in lines that are fatal at a start
		// (nginx's [emerg]), and serves on with the old one.
		master, err := o.newMaster(root, rc, old, sent, logged, tail.Readable() && !rc.QuietLog)
		rejected := errors.Is(err, server.ErrReloadRejected)
		if fatal := st.Profile.FatalLines(logged); len(fatal) > 0 && !rejected {
			return true, fmt.Errorf("fatal lines since the reload: %s", firstLines(fatal))
		}
		if !k.Reexecs() && !proc.SameAlive(root, old) {
			return true, fmt.Errorf("master %d exited after the reload; error log: %s", old.PID, firstLines(server.LastLines(logged, 5)))
		}
		if rejected {
			if serr := o.generationServes(root, old, false, rep); serr != nil {
				return true, fmt.Errorf("%w, and it does not serve: %w", err, serr)
			}
			st.Log.Error().Err(err).Int("pid", old.PID).Msg("reload rejected: the old configuration still serves")
			return true, err
		}
		if err == nil {
			err = o.generationServes(root, master, server.ReloadStartsChildren(k), rep)
		}
		if err == nil {
			st.watch.MarkVerified()
			if master.PID != old.PID {
				rep.Master = &master
			}
			st.Log.Info().Int("pid", master.PID).Ints("new_children", rep.NewChildren).Msg("reloaded and verified")
		}
		return err == nil, err
	})
	return err
}

// newMaster returns the master of the new generation once the log shows
// it (without a readable log: the same master, or the one the pidfile
// names for a server that re-executes), proven through the pidfile when it
// is not the old one.
func (o ReloadOptions) newMaster(root string, rc server.RunConfig, old ipcguard.Proc, sent time.Time, logged string, logOK bool) (ipcguard.Proc, error) {
	p := o.Start.Profile
	pid := old.PID
	if logOK {
		var err error
		if pid, err = p.Driver.Reloaded(logged, old); err != nil {
			return ipcguard.Proc{}, err
		}
		if pid == 0 {
			return ipcguard.Proc{}, fmt.Errorf("master %d has not logged a new generation that serves", old.PID)
		}
	}
	if !p.Driver.Reexecs() {
		return old, nil
	}
	m, err := proc.FromPIDFile(root, rc.PidFile, p.Binary)
	if err != nil {
		return m, fmt.Errorf("no new master yet: %w", err)
	}
	if logOK && m.PID != pid {
		return m, fmt.Errorf("the log names new master %d, the pidfile %d", pid, m.PID)
	}
	if !logOK && m.Key() == old.Key() && !writtenSince(rc.PidFile, sent) {
		// Without the log, the re-executed master proves itself by writing
		// its pidfile again: a daemonized php-fpm does so after forking a
		// new pid, one run with --nodaemonize (Debian's systemd unit) in the
		// same process. Until then the old pid may be the exec'd image about
		// to fork, or the old master still waiting for its children.
		return m, fmt.Errorf("the pidfile still names master %d, unwritten since the reload: no re-executed master yet", old.PID)
	}
	if m.PID != old.PID && m.Start.Before(sent.Add(-proc.PIDFileSlack)) {
		return m, fmt.Errorf("%w: pidfile names pid %d, which started before the reload", proc.ErrPIDReused, m.PID)
	}
	return m, nil
}

// generationServes checks one round: children of the new generation (when
// needChildren), and that the master's listeners serve.
func (o ReloadOptions) generationServes(root string, master ipcguard.Proc, needChildren bool, rep *ReloadReport) error {
	procs, err := ipcguard.ReadProcTable(root)
	if err != nil {
		return err
	}
	rep.NewChildren = []int{}
	for _, p := range proc.Descendants(procs, master, o.Start.Profile.Binary)[1:] {
		if !slices.Contains(rep.OldChildren, p.PID) {
			rep.NewChildren = append(rep.NewChildren, p.PID)
		}
	}
	if needChildren && len(rep.NewChildren) == 0 {
		return errors.New("no child of the new generation yet")
	}
	listening, err := sock.ReadListening(root)
	if err != nil {
		return err
	}
	ls := sock.ListenersOf(root, master.PID, listening)
	if err := verify.CheckServes(ls, o.Start.healthURL(), o.Start.Profile.Driver.SpeaksHTTP(), 2*time.Second); err != nil {
		return err
	}
	return verify.WorkersAccept(context.Background(), root, o.Start.Profile, master, ls, time.Now().Add(time.Second), o.Start.Log)
}

// recover starts the server, verified, after it died or was not running.
func (o ReloadOptions) recover(ctx context.Context, sig *ipcguard.Signature, rc server.RunConfig, rep ReloadReport, why string) (ReloadReport, error) {
	rep.Fallback = why
	startRep, err := o.Start.start(ctx, sig, rc)
	if rep.Restart == nil {
		rep.Restart = &RestartReport{}
	}
	rep.Restart.Start = startRep
	if err != nil && rep.Signal == "" {
		return rep, fmt.Errorf("%s, and the start failed: %w", why, err)
	}
	if err != nil {
		return rep, fmt.Errorf("%w (%s), and the recovery start failed too, so the server is down: %w; "+
			"fix what the server names, then run safe-restart start %s", ErrReloadKilled, why, err, o.Start.Profile.Name)
	}
	rep.Recovered = true
	return rep, nil
}

// Acted reports whether the reload changed anything: a signal sent, or a
// restart or start that acted.
func (r ReloadReport) Acted() bool {
	return r.Signal != "" || (r.Restart != nil && r.Restart.Acted())
}

// writtenSince reports whether the file at path was modified at or after t.
func writtenSince(path string, t time.Time) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.ModTime().Before(t)
}

// masterLives reports whether the old master, or for a server that
// re-executes the master its pidfile names, is alive.
func (o ReloadOptions) masterLives(root string, rc server.RunConfig, old ipcguard.Proc) bool {
	if !o.Start.Profile.Driver.Reexecs() {
		return proc.SameAlive(root, old)
	}
	_, err := proc.FromPIDFile(root, rc.PidFile, o.Start.Profile.Binary)
	return err == nil
}

// recordSample records a sample of master after a verified reload; a
// failure is logged, the reload stands.
func (o ReloadOptions) recordSample(root string, rc server.RunConfig, master ipcguard.Proc) {
	if o.SampleDir == "" {
		return
	}
	k := o.Start.Profile.Driver
	procs, err := ipcguard.ReadProcTable(root)
	if err == nil {
		reloads := k.ReloadsLogged(verify.MasterLog(rc.ServerRoot, rc.ErrorLog, master.Start), master)
		err = growth.RecordSample(o.SampleDir, o.Start.Profile.Name, growth.TakeSample(root, master, reloads, -1, proc.PIDs(proc.Descendants(procs, master, o.Start.Profile.Binary))))
	}
	if err != nil {
		o.Start.Log.Warn().Err(err).Msg("cannot record a sample of the master for doctor")
	}
}

// reloadCount returns how many times master has been reloaded and where
// the count comes from: the status page at StatusURL when it is set and
// answers for this master, else the reloads logged in its error log and
// the rotated ones since it started (-1 when the server does not log them).
func (o ReloadOptions) reloadCount(ctx context.Context, master ipcguard.Proc, rc server.RunConfig) (int, string) {
	k := o.Start.Profile.Driver
	if o.StatusURL != "" {
		n, err := o.Start.Profile.StatusReloads(ctx, o.StatusURL, master)
		if err == nil {
			return n, "status page"
		}
		o.Start.Log.Warn().Err(err).Msg("counting reloads in the error log and its rotated files instead")
	}
	return k.ReloadsLogged(verify.MasterLog(rc.ServerRoot, rc.ErrorLog, master.Start), master), "error log"
}
