package run

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise"
	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/server"
	"github.com/safe-restart/safe-restart/supervise/verify"
)

// startGeneration clears the ground, starts the child and verifies it.
// It returns a nil channel only when nothing was started; with a channel,
// an error says the start was not verified.
func (f *Foreground) startGeneration(ctx context.Context, n int, pre *prepared) (*Generation, <-chan proc.ExitStatus, error) {
	if pre == nil {
		var err error
		if pre, err = f.prepare(ctx); err != nil {
			return nil, nil, err
		}
	}
	sig, rc := pre.sig, pre.rc
	if err := f.clearGround(ctx, sig, rc); err != nil {
		return nil, nil, err
	}
	before, err := ipcguard.Take(ctx, ipcguard.Source{ProcRoot: f.o.ProcRoot})
	if err != nil {
		return nil, nil, err
	}
	tail := verify.NewLogTail(rc.ServerRoot, rc.ErrorLog)
	defer tail.Close()
	oom := proc.ReadOOMCounter(f.o.ProcRoot, os.Getpid()) // the child starts in this process's cgroup
	socks, env := f.handoff.forStart(n, rc.Listen)
	pid, exited, err := f.reap.Spawn(func() (int, error) { return f.fork(socks, env) })
	if err != nil {
		return nil, nil, err
	}
	f.group = pid // Setpgid: the child leads its own group
	gen := &Generation{N: n, Master: ipcguard.Proc{PID: pid}, Started: time.Now(), oom: oom}
	if m, err := ipcguard.ReadProc(f.o.ProcRoot, pid); err == nil {
		gen.Master = m
	}
	f.cur.Store(gen)
	f.o.Log.Info().Str("event", "start").Int("gen", n).Int("pid", pid).Strs("argv", f.o.Argv).Msg("started the child")
	if err := f.verifyStart(ctx, gen, sig, rc, before, tail); err != nil {
		return gen, exited, err
	}
	f.handoff.take(n, gen.Master, rc.Listen)
	serving := *gen
	serving.Serving = true
	if c := proc.ReadOOMCounter(f.o.ProcRoot, pid); c.File != oom.File {
		serving.oom = c // it moved to another memory cgroup: count there
	}
	f.cur.Store(&serving)
	f.o.Log.Info().Str("event", "serving").Int("gen", n).Int("pid", pid).Dur("took", time.Since(gen.Started)).
		Bool("verified", f.o.Profile != nil || f.o.HealthURL != "").Msg("the child is up")
	return &serving, exited, nil
}

// fork starts the child in a process group of its own, stdin on
// /dev/null, stdout and stderr on the supervisor's (or Options'), socks
// as fds 3, 4, ... and env, the variables that name them, added to this
// process's environment (see runHandoff.env).
func (f *Foreground) fork(socks []*os.File, env []string) (int, error) {
	path, err := exec.LookPath(f.o.Argv[0])
	if err != nil {
		return 0, fmt.Errorf("start %s: %w", f.o.Argv[0], err)
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		return 0, err
	}
	defer null.Close()
	stdout, stderr := cmp.Or(f.o.Stdout, os.Stdout), cmp.Or(f.o.Stderr, os.Stderr)
	files := []uintptr{null.Fd(), stdout.Fd(), stderr.Fd()}
	for _, s := range socks {
		files = append(files, s.Fd())
	}
	pid, err := syscall.ForkExec(path, f.o.Argv, &syscall.ProcAttr{
		Env:   f.handoff.env(env),
		Files: files,
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		return 0, fmt.Errorf("start %s: %w", path, err)
	}
	return pid, nil
}

// verifyStart waits until the child serves: with a profile as a start
// does (listeners accept, the health check passes, no fatal line), and
// records the IPC it created; without one, until the health check passes
// (at once when there is none).
func (f *Foreground) verifyStart(ctx context.Context, gen *Generation, sig *ipcguard.Signature, rc server.RunConfig, before ipcguard.Snapshot, tail *verify.LogTail) error {
	if f.o.Profile == nil {
		return f.awaitHealth(ctx, gen)
	}
	st := f.startOptions()
	var rep supervise.StartReport
	err := st.Verify(ctx, f.o.ProcRoot, gen.Master, tail, "", &rep)
	if err == nil && sig != nil {
		err = st.RecordLineage(ctx, sig, gen.Master, before, &rep)
	}
	return err
}

// awaitHealth polls the health check until it passes, the child exits or
// the start's timeout passes.
func (f *Foreground) awaitHealth(ctx context.Context, gen *Generation) error {
	if f.o.HealthURL == "" {
		return nil
	}
	timedOut, err := proc.Retry(ctx, proc.Wall, time.Now().Add(f.o.Timeout), healthPoll, func() (bool, error) {
		err := verify.HTTPGet(f.o.HealthURL, 2*time.Second)
		if err != nil && !proc.SameAlive(f.o.ProcRoot, gen.Master) {
			return true, fmt.Errorf("%w: the child exited before it served", supervise.ErrStartFailed)
		}
		return err == nil, err
	})
	if timedOut {
		return fmt.Errorf("%w: %w", supervise.ErrStartFailed, err)
	}
	return err
}

// healthPoll is how often a supervised child's first health check is
// asked again.
const healthPoll = 50 * time.Millisecond

// startOptions are the profile's start options.
func (f *Foreground) startOptions() supervise.StartOptions {
	return supervise.StartOptions{Profile: *f.o.Profile, Conf: f.o.Conf, HealthURL: f.o.HealthURL, Timeout: f.o.Timeout,
		LineageDir: f.o.LineageDir, ProcRoot: f.o.ProcRoot, Log: f.o.Log}
}

// clearGround stops what the previous generation left in its process
// group and, with a profile, what a start clears: orphaned workers of dead
// masters, the IPC of dead generations (each with its proof), stale
// sockets, and checks the IPC headroom.
func (f *Foreground) clearGround(ctx context.Context, sig *ipcguard.Signature, rc server.RunConfig) error {
	if err := f.clearGroup(ctx); err != nil {
		return err
	}
	if f.o.Profile == nil {
		return nil
	}
	var rep supervise.StartReport
	err := f.startOptions().ClearGround(ctx, f.o.ProcRoot, sig, rc, &rep)
	if len(rep.Orphans) > 0 || ipcguard.CountRemoved(rep.Reaped) > 0 || len(rep.Leftovers) > 0 {
		f.o.Log.Warn().Str("event", "reap").Ints("orphans_stopped", rep.Orphans).Int("ipc_removed", ipcguard.CountRemoved(rep.Reaped)).
			Strs("leftovers_removed", rep.Leftovers).Str("reason", "a dead generation left them").Msg("cleared the ground before the start")
	}
	return err
}

// clearGroup stops the live processes left in the previous generation's
// process group (TERM, then KILL).
func (f *Foreground) clearGroup(ctx context.Context) error {
	if f.group == 0 {
		return nil
	}
	left := f.groupMembers(f.group)
	if len(left) == 0 {
		return nil
	}
	f.o.Log.Warn().Str("event", "reap").Ints("pids", proc.PIDs(left)).Int("pgid", f.group).
		Str("reason", "processes of the dead generation's group outlived it").Msg("stopping them")
	return supervise.StopAll(ctx, f.o.ProcRoot, left, f.o.Log)
}

// groupMembers returns the live processes of process group pgid that
// descend from this process. A pgid alone proves nothing once its leader
// is gone: the number may lead an unrelated group now. As PID 1 or the
// subreaper, safe-restart is an ancestor of everything its child left,
// re-parented or not.
func (f *Foreground) groupMembers(pgid int) []ipcguard.Proc {
	procs, err := ipcguard.ReadProcTable(f.o.ProcRoot)
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var out []ipcguard.Proc
	for _, p := range procs.ByPID {
		if g, err := proc.ReadPGID(f.o.ProcRoot, p.PID); err == nil && g == pgid && p.Alive() && descendsFrom(procs, p, self) {
			out = append(out, p)
		}
	}
	return out
}

// descendsFrom reports whether p is a descendant of process ancestor,
// following the parent pids of procs.
func descendsFrom(procs ipcguard.ProcTable, p ipcguard.Proc, ancestor int) bool {
	for range len(procs.ByPID) { // bounded: a table read while pids are reused may hold a cycle
		if p.PPID == ancestor {
			return true
		}
		parent, ok := procs.ByPID[p.PPID]
		if !ok {
			return false
		}
		p = parent
	}
	return false
}

// stop climbs the stop ladder on the child's tree and returns its exit
// status, logged with reason.
func (f *Foreground) stop(gen *Generation, exited <-chan proc.ExitStatus, reason string) proc.ExitStatus {
	ctx := context.Background() // the ladder bounds itself; it runs after a cancellation too
	members := f.treeOf(gen)
	killed := false // the ladder sent SIGKILL: a SIGKILL status is its own
	if len(members) > 0 {
		f.o.Log.Info().Int("gen", gen.N).Int("pid", gen.Master.PID).Ints("tree", proc.PIDs(members)).Str("reason", reason).Msg("stopping the child with the ladder")
		reps, err := f.ladder().Run(ctx, proc.LadderRun{ProcRoot: f.o.ProcRoot, Master: gen.Master, Members: members, Log: f.o.Log})
		if err != nil {
			f.o.Log.Warn().Err(err).Int("pid", gen.Master.PID).Msg("the stop ladder did not finish")
		}
		for _, r := range reps {
			killed = killed || (r.Step.Signal == syscall.SIGKILL && len(r.Sent) > 0)
		}
	}
	select {
	case st := <-exited:
		st.OOMKilled = st.Signal == syscall.SIGKILL && !killed && f.oomMark.Since() > 0
		f.logExit(gen, st, reason)
		return st
	case <-time.After(10 * time.Second):
		f.o.Log.Error().Int("pid", gen.Master.PID).Msg("no exit status from the child 10 s after the ladder")
		return proc.ExitStatus{Code: -1}
	}
}

// treeOf returns the child and its live descendants running the server's
// binary, and the live members of its process group.
func (f *Foreground) treeOf(gen *Generation) []ipcguard.Proc {
	procs, err := ipcguard.ReadProcTable(f.o.ProcRoot)
	if err != nil {
		return []ipcguard.Proc{gen.Master}
	}
	master, ok := procs.Live(gen.Master.PID)
	if !ok || master.StartTicks != gen.Master.StartTicks {
		return f.groupMembers(gen.Master.PID)
	}
	exe := master.Exe
	if f.o.Profile != nil {
		exe = f.o.Profile.Binary
	}
	tree := proc.Descendants(procs, master, exe)
	seen := map[int]bool{}
	for _, p := range tree {
		seen[p.PID] = true
	}
	for _, p := range f.groupMembers(gen.Master.PID) {
		if !seen[p.PID] {
			tree = append(tree, p)
		}
	}
	return tree
}

// ladder is the stop ladder: the caller's, the profile's, or TERM then
// KILL.
func (f *Foreground) ladder() proc.Ladder {
	switch {
	case f.o.Ladder != nil:
		return f.o.Ladder
	case f.o.Profile != nil:
		return f.o.Profile.Ladder(server.DefaultGracefulWait)
	}
	return proc.Ladder{{Signal: syscall.SIGTERM, Wait: 10 * time.Second}, {Signal: syscall.SIGKILL, Wait: 5 * time.Second, All: true}}
}
