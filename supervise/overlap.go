package supervise

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/internal/atomicfile"
	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/server"
	"github.com/safe-restart/safe-restart/supervise/sock"
	"github.com/safe-restart/safe-restart/supervise/verify"
)

// reuseportWorks reports whether the server can be started with
// SO_REUSEPORT (see server.Overlapper), logging why not.
func reuseportWorks(st StartOptions, rc server.RunConfig) bool {
	if _, ok := st.Profile.Driver.(server.Overlapper); !ok {
		return false
	}
	if !rc.Reuseport {
		st.Log.Warn().Str("error", rc.NoReuseport).Msg("the server's config test fails with SO_REUSEPORT set (-C ListenCoresBucketsRatio): started plainly, and restarts cannot overlap")
	}
	return rc.Reuseport
}

// overlapAsideSuffix names where the old master's pidfile waits while the
// new master starts (the server's own start refuses while its pidfile
// names a live process).
const overlapAsideSuffix = ".safe-restart-old"

// overlapBlocker says why the running master old cannot be replaced by an
// overlap, "" when it can as far as the host's room goes: both
// generations' semaphore sets must fit at once, and so must their memory
// (memoryBlocker).
func overlapBlocker(root string, old ipcguard.Proc, sig *ipcguard.Signature, st StartOptions) string {
	if sig != nil {
		inUse, limit, err := ipcguard.SemHeadroom(ipcguard.Source{ProcRoot: st.ProcRoot})
		if err != nil {
			return fmt.Sprintf("read semaphore headroom: %v", err)
		}
		if limit-inUse < SysVSetsNeeded {
			return fmt.Sprintf("%d of %d semaphore sets in use: too few for two generations at once", inUse, limit)
		}
	}
	return memoryBlocker(root, old, st.startCGroup(root), st.Log)
}

// holdBeside opens the old master's listeners to a new master beside them
// (see beside), whoever started it. Where the kernel refuses that, an
// overlap can still rely on the kernel moving the old master's queued
// connections to the new one as its sockets close (migrateBlocker): b is
// then nil. why says why neither works.
func holdBeside(root string, old ipcguard.Proc, log zerolog.Logger) (b *beside, why string) {
	listening, err := sock.ReadListening(root)
	if err != nil {
		return nil, fmt.Sprintf("read the listening sockets: %v", err)
	}
	ls := sock.ListenersOf(root, old.PID, listening)
	if len(ls) == 0 {
		return nil, fmt.Sprintf("master %d holds no listening socket", old.PID)
	}
	b, err = openBeside(root, old, ls, log)
	if err == nil {
		return b, ""
	}
	if why := migrateBlocker(root, old, listening); why != "" {
		return nil, fmt.Sprintf("cannot open master %d's listeners to a new master (%v), and %s", old.PID, err, why)
	}
	log.Warn().Err(err).Msg("cannot steer new connections to the new master: the overlap relies on the kernel moving the old master's queued connections (net.ipv4.tcp_migrate_req=1)")
	return nil, ""
}

// migrateBlocker says why an overlap that cannot steer connections would
// reset some, "" when it would not: the kernel must migrate the
// connections queued on a closing listener (net.ipv4.tcp_migrate_req=1),
// and the old listeners must have SO_REUSEPORT already (a master
// safe-restart started).
func migrateBlocker(root string, old ipcguard.Proc, listening map[uint64]string) string {
	if !migrates(root) {
		return "net.ipv4.tcp_migrate_req is not 1 (or Linux < 5.14 has none): the old master's queued connections would be reset"
	}
	for _, l := range sock.ListenerFDs(root, old.PID, listening) {
		on, err := sock.ReusePort(old.PID, l.FD)
		if err != nil {
			return fmt.Sprintf("read SO_REUSEPORT of master %d's listener %s: %v", old.PID, l.Addr, err)
		}
		if !on {
			return fmt.Sprintf("master %d's listener %s lacks SO_REUSEPORT (it was not started by safe-restart)", old.PID, l.Addr)
		}
	}
	return ""
}

// overlapRestart replaces the running master of a server.Overlapper by a new
// one started beside it on SO_REUSEPORT (see replaceBeside). It reports
// handled false, having changed nothing, when no master runs or an overlap
// cannot work (the reason is logged): the caller then restarts plainly.
func overlapRestart(ctx context.Context, s StopOptions, st StartOptions, sig *ipcguard.Signature, rc server.RunConfig) (RestartReport, bool, error) {
	var rep RestartReport
	if _, ok := st.Profile.Driver.(server.Overlapper); !ok {
		return rep, false, nil // a server without an overlap (nginx, php-fpm: the socket handoff)
	}
	root := proc.RootOr(st.ProcRoot)
	old, err := st.Profile.Master(root, rc)
	if err != nil {
		return rep, false, nil // not running, or not provably the server: the plain path decides
	}
	b, why := planOverlap(root, old, sig, st)
	if why != "" {
		st.Log.Warn().Str("reason", why).Msg("full restart without an overlap: clients may be refused while no master listens")
		rep.OverlapSkipped = why
		return rep, false, nil
	}
	return rep, true, replaceBeside(ctx, s, st, sig, rc, old, b, &rep)
}

// planOverlap says why the running master old of a server.Overlapper cannot be
// replaced by an overlap (--no-overlap, no room, no SO_REUSEPORT start, its
// sockets cannot be opened to a new master), or holds its sockets for one
// (see holdBeside; b is nil where the kernel migrates instead).
func planOverlap(root string, old ipcguard.Proc, sig *ipcguard.Signature, st StartOptions) (b *beside, why string) {
	switch {
	case st.NoOverlap:
		return nil, overlapDisabled
	case !st.reuseport:
		return nil, "the server's config test fails with SO_REUSEPORT set (-C ListenCoresBucketsRatio: Apache older than 2.4.17?)"
	}
	if why := overlapBlocker(root, old, sig, st); why != "" {
		return nil, why
	}
	return holdBeside(root, old, st.Log)
}

// overlapDisabled is why a restart with --no-overlap did not overlap.
const overlapDisabled = "disabled (--no-overlap)"

// handoffOverlapBlocker says why a restart holding the old master's
// sockets (h) must stop it before starting the new master, "" when the new
// master can start beside it on the held sockets, as nginx's own binary
// upgrade does: both generations then accept from the same queues until
// the old one stops, so the clients never wait for a start. Both
// generations must fit at once (overlapBlocker); without room, the held
// sockets queue new connections while no master accepts.
func handoffOverlapBlocker(root string, h *handoff, sig *ipcguard.Signature, st StartOptions) string {
	if st.NoOverlap {
		return overlapDisabled
	}
	if len(h.left) > 0 {
		// The new master would bind such a listener itself, and fail while
		// the old one holds it, if the configuration names it in a form
		// sock.ConfigListens does not read ("listen localhost").
		return fmt.Sprintf("master %d listens on %s, which the new configuration does not name as safe-restart reads it: the old master stops before the new one starts",
			h.master.PID, strings.Join(sock.Addrs(h.left), ", "))
	}
	return overlapBlocker(root, h.master, sig, st)
}

// replaceBeside replaces the running master old by a new one started
// beside it: on SO_REUSEPORT (overlapRestart, b holding the old sockets,
// or nil where the kernel migrates instead) or on the sockets a handoff
// holds (st.handoff). Every verification of a plain restart holds: the
// config test ran before, the new master is proven through its pidfile,
// its listeners, the health check and the absence of fatal lines, and its
// IPC lineage is recorded; and its own generation must be seen taking
// connections (generationAccepts: the health check may have been answered
// by the old one). Then b steers every new connection to the new master
// and waits for the old sockets to drain; the old master is stopped with
// the ladder, and its generation's IPC is reaped with proofs once it
// exited. If the new master fails its verification it is stopped and the
// old one keeps serving, its pidfile back in place and its sockets as
// they were.
func replaceBeside(ctx context.Context, s StopOptions, st StartOptions, sig *ipcguard.Signature, rc server.RunConfig, old ipcguard.Proc, b *beside, rep *RestartReport) error {
	root := proc.RootOr(st.ProcRoot)
	if st.handoff == nil { // a handoff's caller said it starts on the held sockets
		st.Log.Info().Int("old", old.PID).Msg("starting a new master beside the old one (SO_REUSEPORT), then stopping the old one gracefully")
	}
	// An interrupted run finds the old master through the intent once
	// its pidfile is aside, and finishes its stop.
	if err := saveIntent(s.IntentDir, s.Profile.Name, old, nil); err != nil {
		b.undoLogged()
		return fmt.Errorf("%w: %w (nothing was started or stopped)", ErrStateDir, err)
	}
	aside := rc.PidFile + overlapAsideSuffix
	if err := os.Rename(rc.PidFile, aside); err != nil {
		clearIntent(s.IntentDir, s.Profile.Name)
		b.undoLogged()
		return fmt.Errorf("move the old master's pidfile aside: %w", err)
	}
	rep.Overlap = true // acted: whatever fails from here was touched
	st.stopped = true
	began := time.Now()
	abandon := func(err error) error {
		b.detachLogged() // nothing more for a new master about to stop
		err = abandonOverlap(ctx, s, root, old, aside, rc, rep.Start.Master, began, err)
		b.undoLogged()
		return err
	}
	st.watch.MarkActed()
	if err := st.startVerified(ctx, root, sig, rc, &rep.Start); err != nil {
		return abandon(err)
	}
	if err := st.proveGeneration(ctx, root, rep.Start); err != nil {
		return abandon(err)
	}
	if err := saveIntent(s.IntentDir, s.Profile.Name, old, rep.Start.Master); err != nil {
		return abandon(err)
	}
	if err := b.steerAndDrain(ctx, root, rep.Start.Listeners); err != nil {
		return abandon(err)
	}
	rep.Steered = b != nil
	rep.Stop.Master = &old
	// From here the old master's stop is the only way to a sound end:
	// interrupted, it would still exit later and remove the pidfile and
	// the unix socket paths that are the new master's by then. The ladder
	// ends in KILL, so it is bounded.
	ctx, end := finishing(ctx, st.Log, "the new master serves and the old one is being stopped")
	defer end(nil)
	err := stopOldMaster(ctx, s, root, old, *rep.Start.Master, rc.PidFile, &rep.Stop)
	if st.handoff != nil {
		st.handoff.afterStop(rep.Handoff)
	}
	b.releaseLogged(root, *rep.Start.Master, rep.Start.Listeners)
	if err != nil {
		return err
	}
	if err := removeAside(root, aside, old); err != nil {
		return err
	}
	if rep.Stop.Orphans, err = stopOrphans(ctx, root, s.Profile.Binary, s.Log); err != nil {
		return err
	}
	if rep.Stop.Reaped, err = reapAfterStop(ctx, sig, server.LineageWindow(rc.Elapsed), s); err != nil {
		return err
	}
	if err := verifySuccessor(root, st, *rep.Start.Master, &rep.Start); err != nil {
		return err
	}
	end(rep.Start.Master)
	return nil
}

// stopPendingBeside finishes the stop of a master that a stop intent names
// while another live master serves: a restart interrupted between
// starting the new master beside the old one and stopping the old one
// left both serving. The pidfile names the new one; or, when the old one
// removed it as its graceful stop began, the intent's successor does, and
// the pidfile is written again (also once the old one has exited). The
// old one is stopped as an overlap stops it (stopOldMaster: the pidfile
// kept, the unit left alone, since the new master is in it).
func stopPendingBeside(ctx context.Context, s StopOptions, rc server.RunConfig) error {
	root := proc.RootOr(s.ProcRoot)
	pending, err := readIntent(s.IntentDir, root, s.Profile, rc.PidFile)
	if err != nil || pending == nil {
		return err
	}
	current, err := s.Profile.Master(root, rc)
	if err != nil {
		if pending.Successor == nil {
			return nil // no other master: a plain stop finishes the pending one
		}
		current = *pending.Successor
		s.Log.Warn().Int("pid", current.PID).Str("pidfile", rc.PidFile).
			Msg("restoring the pidfile of the new master an interrupted restart left serving")
		if err := atomicfile.WriteFile(rc.PidFile, []byte(strconv.Itoa(current.PID)+"\n"), 0o644); err != nil {
			return fmt.Errorf("restore the pidfile: %w", err)
		}
	}
	if pending.MasterGone || pending.Master.PID == current.PID {
		clearIntent(s.IntentDir, s.Profile.Name)
		return nil
	}
	s.Log.Warn().Int("pid", pending.Master.PID).Int("master", current.PID).
		Msg("finishing the stop of an old master an interrupted restart left serving beside the new one")
	s.unit = nil
	var r StopReport
	return stopOldMaster(ctx, s, root, pending.Master, current, rc.PidFile, &r)
}

// stopOldMaster stops the old master with the ladder while keeping the
// pidfile naming the new one: Apache's graceful stop removes the pidfile
// path it was started with, which by then is the new master's; and ends
// the old master's wait (see Linger) only once that file is back.
func stopOldMaster(ctx context.Context, s StopOptions, root string, old, successor ipcguard.Proc, pidFile string, rep *StopReport) error {
	// The master's exit must find the pidfile naming its successor
	// (systemd reads it then, see unitOverlap): the stop ends its wait
	// only once it does.
	s.lingerReady = func() error {
		if !proc.SameAlive(root, successor) {
			return fmt.Errorf("the new master %d exited", successor.PID)
		}
		return ensurePIDFile(pidFile, successor.PID)
	}
	s.successor = &successor
	done := make(chan struct{})
	kept := make(chan error, 1)
	go func() { kept <- keepPIDFile(root, pidFile, old, successor, done) }()
	err := s.stopTree(ctx, root, old, rep)
	close(done)
	return errors.Join(err, <-kept)
}

// keepPIDFile writes successor's pid to pidFile whenever the file is
// missing, until old has exited (only old removes it) or done is closed,
// and once more after.
func keepPIDFile(root, pidFile string, old, successor ipcguard.Proc, done <-chan struct{}) error {
	for {
		gone := !proc.SameAlive(root, old)
		if !proc.SameAlive(root, successor) {
			return fmt.Errorf("the new master %d exited", successor.PID)
		}
		if err := ensurePIDFile(pidFile, successor.PID); err != nil {
			return err
		}
		if gone {
			return nil
		}
		select {
		case <-done:
			return ensurePIDFile(pidFile, successor.PID)
		case <-time.After(verify.ReadyPoll):
		}
	}
}

// ensurePIDFile writes pid to pidFile, atomically, if the file is missing.
func ensurePIDFile(pidFile string, pid int) error {
	if _, err := os.Stat(pidFile); !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := atomicfile.WriteFile(pidFile, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		return fmt.Errorf("restore the pidfile: %w", err)
	}
	return nil
}

// removeAside removes the old master's pidfile, set aside for the start,
// once it is proven to name only the old master, which has exited.
func removeAside(root, aside string, old ipcguard.Proc) error {
	pid, _, err := proc.ReadPIDFile(aside)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if pid != old.PID || proc.SameAlive(root, old) {
		return fmt.Errorf("%s no longer names the stopped master %d: left in place", aside, old.PID)
	}
	return os.Remove(aside)
}

// abandonOverlap undoes an overlap whose new master failed verification:
// the new master, if one came up, is stopped with the ladder (its stop
// removes the pidfile it wrote), and the old master's pidfile is put back.
// The old master never stopped serving.
//
// A start that failed before its master wrote the pidfile (a timeout, an
// interruption) may still leave that master coming up: every master that
// appeared since the start began (a session leader running the server's
// binary, not the old master, started since) is stopped too, even when ctx
// was cancelled, since two masters on SO_REUSEPORT would both serve on. The
// old master's stop intent stays unless its pidfile is back, so that the
// next restart finishes what this one could not.
func abandonOverlap(ctx context.Context, s StopOptions, root string, old ipcguard.Proc, aside string, rc server.RunConfig, started *ipcguard.Proc, began time.Time, cause error) error {
	if err := ctx.Err(); err != nil {
		cause = fmt.Errorf("interrupted (%w) before the new master was proven: %w", err, cause)
	}
	cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	var errs []error
	for _, m := range newMasters(root, s.Profile.Binary, old, started, began) {
		s.Log.Warn().Int("pid", m.PID).Msg("stopping the new master of an overlap that failed")
		var r StopReport
		errs = append(errs, s.stopTree(cleanup, root, m, &r))
	}
	restored := false
	switch cur, err := proc.FromPIDFile(root, rc.PidFile, s.Profile.Binary); {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, proc.ErrStalePIDFile):
		// Missing, or left by a new master that died: the old one's goes back.
		err := os.Rename(aside, rc.PidFile)
		restored = err == nil
		errs = append(errs, err)
	case err == nil:
		errs = append(errs, fmt.Errorf("%s names the live master %d: the old master's pidfile stays at %s", rc.PidFile, cur.PID, aside))
	default:
		errs = append(errs, fmt.Errorf("%w: the old master's pidfile stays at %s", err, aside))
	}
	if restored {
		clearIntent(s.IntentDir, s.Profile.Name)
	} else {
		// Stopping the new masters recorded (and cleared) their own
		// intents: the old master's is what the next run must finish.
		errs = append(errs, saveIntent(s.IntentDir, s.Profile.Name, old, nil))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w; undoing it: %w", ErrStartFailed, cause, err)
	}
	return fmt.Errorf("%w: %w; the old master %d still serves", ErrStartFailed, cause, old.PID)
}

// newMasters returns started (when alive) and every other live master of
// the server that appeared since began: a process running exe whose parent
// does not (a master detaching, before or after its setsid), not old.
func newMasters(root, exe string, old ipcguard.Proc, started *ipcguard.Proc, began time.Time) []ipcguard.Proc {
	var out []ipcguard.Proc
	if started != nil && proc.SameAlive(root, *started) {
		out = append(out, *started)
	}
	procs, err := ipcguard.ReadProcTable(root)
	if err != nil {
		return out
	}
	svc := proc.RunningExactly(procs, exe)
	isSvc := map[int]bool{}
	for _, p := range svc {
		isSvc[p.PID] = true
	}
	for _, p := range svc {
		switch {
		case isSvc[p.PPID], p.Key() == old.Key(), started != nil && p.Key() == started.Key():
		case p.Start.Before(began.Add(-proc.PIDFileSlack)):
		default:
			out = append(out, p)
		}
	}
	return out
}

// verifySuccessor checks the new master once it serves alone: while both
// ran, a health check could have been answered by the old one. It also
// proves that no other process shares its ports: SO_REUSEPORT would let
// a stray listener of the same user take a share of the connections where
// the server's own start would have failed to bind.
func verifySuccessor(root string, st StartOptions, master ipcguard.Proc, rep *StartReport) error {
	if !proc.SameAlive(root, master) {
		return fmt.Errorf("%w: the new master %d exited", ErrStartFailed, master.PID)
	}
	listening, err := sock.ReadListening(root)
	if err != nil {
		return err
	}
	rep.Listeners = sock.ListenersOf(root, master.PID, listening)
	if err := soleListener(rep.Listeners, listening); err != nil {
		return err
	}
	if err := verify.CheckServes(rep.Listeners, st.healthURL(), st.Profile.Driver.SpeaksHTTP(), 2*time.Second); err != nil {
		return fmt.Errorf("%w: after the old master left: %w", ErrStartFailed, err)
	}
	return nil
}

// soleListener fails when a listening socket other than the master's own
// is bound to one of its addresses.
func soleListener(own []sock.Listener, listening map[uint64]string) error {
	mine := map[uint64]bool{}
	addrs := map[string]bool{}
	for _, l := range own {
		mine[l.Inode], addrs[l.Addr] = true, true
	}
	for inode, addr := range listening {
		if addrs[addr] && !mine[inode] {
			return fmt.Errorf("%w: another socket (inode %d) listens on %s beside the new master", ErrStartFailed, inode, addr)
		}
	}
	return nil
}

// finishing returns ctx without its cancellation, for the part of an
// operation that must run to its end once begun: a restart whose old
// master is being stopped would otherwise leave the service down when a
// deploy job is cancelled (SIGINT, SIGTERM). Its end is bounded by the
// ladder's steps and the start's timeout, not by the caller. When ctx is
// cancelled meanwhile, a warning says what is being finished. end stops
// that watch (calls after the first do nothing) and, when ctx was
// cancelled and served names the master that serves at the end, says so
// (a failure's error says the rest).
func finishing(ctx context.Context, log zerolog.Logger, what string) (context.Context, func(served *ipcguard.Proc)) {
	stop := context.AfterFunc(ctx, func() {
		log.Warn().Str("cause", context.Cause(ctx).Error()).
			Msg("interrupted, but " + what + ": finishing that first, so that the service is not left down (SIGKILL abandons it; the next run then finishes the stop)")
	})
	ended := false
	return context.WithoutCancel(ctx), func(served *ipcguard.Proc) {
		if ended {
			return
		}
		ended = true
		stop()
		if served != nil && ctx.Err() != nil {
			log.Warn().Int("pid", served.PID).Msg("the interrupted restart was finished: the new master serves")
		}
	}
}
