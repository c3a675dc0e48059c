package run

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/server"
)

// ForegroundOptions configure a foreground supervisor (safe-restart run):
// the child, what safe-restart knows about it, and how it restarts it.
type ForegroundOptions struct {
	// Argv is the server in the foreground, e.g. php-fpm8.2 -F -y CONF.
	Argv []string
	// Profile, when set, is the server's (a built-in profile or a service
	// file): its config test runs before every start and reload, its
	// reload is verified, its ladder stops it, its orphans and IPC are
	// cleared after a crash. Nil supervises any command: HUP is forwarded
	// unverified, a recycle is a restart.
	Profile *server.Profile
	Conf    string // the profile's config file ("" means the profile's)
	// Ladder stops the child; nil means the profile's with
	// DefaultGracefulWait, or TERM for 10 s then KILL for any command.
	Ladder proc.Ladder
	// HealthURL is the health check (see HealthWatch); with a profile the
	// child's listeners must accept too.
	HealthURL string
	// Timeout bounds a start: the child must serve within it (20 s).
	Timeout time.Duration
	Policy  RestartPolicy
	// NoHandoff makes every restart a plain one: the listening sockets
	// close with the child, instead of being held for the next one (see
	// runHandoff).
	NoHandoff  bool
	LineageDir string // where the IPC lineage of each start is recorded
	ProcRoot   string // "/proc" when empty
	// Stdout and Stderr are the child's (nil: this process's). Its stdin
	// is /dev/null.
	Stdout, Stderr *os.File
	Log            zerolog.Logger
}

// Generation is one run of the child, as the watchers see it.
type Generation struct {
	N       int           // 1 for the first start, +1 for each start
	Master  ipcguard.Proc // the child
	Started time.Time
	// Serving says the start was verified (it serves); the watchers judge
	// only a serving generation.
	Serving bool
	// oom is the OOM-kill count of the child's memory cgroup, read before
	// it was spawned (again once it served, if it moved to another group).
	oom proc.OOMCounter
}

// Action is what a Request asks of the supervisor.
type Action int

// Actions of a Request.
const (
	ActReload  Action = iota + 1 // verified reload (HUP)
	ActReopen                    // reopen the logs (USR1)
	ActRestart                   // stop ladder, clear the ground, start again
	ActRecycle                   // graceful recycle: the profile's reload, else a restart
)

func (a Action) String() string {
	return map[Action]string{ActReload: "reload", ActReopen: "reopen", ActRestart: "restart", ActRecycle: "recycle"}[a]
}

// Request asks the supervisor to act on generation Gen (0: whichever
// runs); a request about a generation that is gone is dropped.
type Request struct {
	Action Action
	Gen    int
	Reason string
	// Crash says the restart answers a failure (health checks failing, a
	// tree still over --max-memory after a recycle): it counts as a crash,
	// under the restart policy's backoff and limit.
	Crash bool
	// Memory holds the figures behind a recycle, logged with it.
	Memory *MemoryFigures
	reply  chan error
}

// Foreground supervises one child in the foreground. Run owns the child;
// other goroutines ask through Do and read Current.
type Foreground struct {
	o    ForegroundOptions
	reqs chan Request
	cur  atomic.Pointer[Generation]
	reap *proc.Reaper
	// group is the previous generation's process group, cleared before
	// the next start.
	group int
	// handoff holds the child's listening sockets between generations.
	handoff *runHandoff
	// oomMark is the latest reading of the child's OOM-kill count, taken
	// every second while it serves: a SIGKILL is named an OOM kill only
	// when the count rose after it.
	oomMark proc.OOMCounter
}

// NewForeground checks o and returns the supervisor.
func NewForeground(o ForegroundOptions) (*Foreground, error) {
	if len(o.Argv) == 0 {
		return nil, errors.New("no command to supervise")
	}
	if err := o.Policy.Validate(); err != nil {
		return nil, err
	}
	o.ProcRoot = proc.RootOr(o.ProcRoot)
	o.Timeout = cmp.Or(o.Timeout, 20*time.Second)
	o.Policy = o.Policy.withDefaults()
	return &Foreground{o: o, reqs: make(chan Request)}, nil
}

// Current returns the running generation, nil before the first start and
// between a child's exit and the next start.
func (f *Foreground) Current() *Generation { return f.cur.Load() }

// Do hands r to Run and waits for its outcome.
func (f *Foreground) Do(ctx context.Context, r Request) error {
	r.reply = make(chan error, 1)
	select {
	case f.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// outcome is how one generation ended.
type outcome int

const (
	exitedOnItsOwn outcome = iota // crashed or exited: the restart policy decides
	startFailed                   // never served: a crash, whatever its status
	stoppedByUs                   // ctx done: the stop ladder ran
	restartNow                    // a request restarted it: start again at once
	restartCrash                  // a failure restarted it: a crash under the policy
)

// ending is how one generation ended: its status, the outcome, why, and
// for a restart what the preparation (config test) found before the
// stop.
type ending struct {
	st  proc.ExitStatus
	how outcome
	why string
	pre *prepared
	// started is when the generation started (zero when none did).
	started time.Time
}

// ran is how long the generation ran.
func (e ending) ran() time.Duration {
	if e.started.IsZero() {
		return 0
	}
	return time.Since(e.started)
}

// prepared is what a start needs from the preparation: the IPC
// signature and the server's run configuration (zero without a profile).
type prepared struct {
	sig *ipcguard.Signature
	rc  server.RunConfig
}

// prepare runs the profile's config test and reads what the server will
// use; without a profile there is nothing to prepare.
func (f *Foreground) prepare(ctx context.Context) (*prepared, error) {
	if f.o.Profile == nil {
		return &prepared{}, nil
	}
	sig, rc, err := f.o.Profile.PrepareFor(ctx, f.o.Conf, true, f.o.Log)
	if err != nil {
		return nil, err
	}
	return &prepared{sig: sig, rc: rc}, nil
}

// Run starts the child and supervises it until ctx is done (then the
// stop ladder stops it) or it exits with no restart due. It returns the
// child's last exit status; after MaxRestarts crashes in a row the error
// wraps ErrGaveUp. A crash is an exit the policy restarts, a start that
// never served, a generation that could not start again, or a failure
// restart (Request.Crash). Every start, exit, restart, reap and recycle is
// one log line with an "event" field and its reason.
func (f *Foreground) Run(ctx context.Context) (proc.ExitStatus, error) {
	f.reap = proc.NewReaper(f.o.ProcRoot, proc.BecomeReaper(f.o.Log), f.o.Log)
	f.handoff = newRunHandoff(f.o)
	defer f.handoff.release() // clients are refused once run ends, as without a handoff
	reapCtx, stopReaping := context.WithCancel(context.WithoutCancel(ctx))
	defer stopReaping()
	go f.reap.Run(reapCtx)
	crashes := 0
	var last proc.ExitStatus
	var pre *prepared
	for n := 1; ; n++ {
		e, err := f.runGeneration(ctx, n, pre)
		if err != nil {
			return proc.ExitStatus{Code: 127}, err // nothing started
		}
		if !e.started.IsZero() {
			last = e.st // else nothing started: the last child's status stands
		}
		pre = e.pre
		f.cur.Store(nil)
		if e.how == stoppedByUs {
			return last, nil
		}
		if ctx.Err() != nil { // asked to stop during a restart's ladder
			f.o.Log.Info().Str("event", "exit").Int("exit_code", last.ExitCode()).Msg("stopped while restarting the child")
			return last, nil
		}
		if e.how == restartNow {
			continue
		}
		var why string
		crashes, why = f.o.Policy.wants(last, e.ran(), crashes, e.how != exitedOnItsOwn)
		if why != "" {
			return last, f.end(last, why, crashes)
		}
		f.handoff.settle() // the child unlinked its socket path as it exited: clients find it through the backoff
		delay := f.o.Policy.delay(crashes)
		f.o.Log.Warn().Str("event", "restart").Int("gen", n).Int("restart", crashes).Int("max_restarts", f.o.Policy.MaxRestarts).
			Dur("backoff", delay).Str("reason", e.why).Msg("restarting the child after a backoff")
		select {
		case <-ctx.Done():
			f.o.Log.Info().Str("event", "exit").Int("exit_code", last.ExitCode()).Msg("stopped while waiting to restart")
			return last, nil
		case <-time.After(delay):
			pre = nil // prepared before the wait: the next start prepares again
		}
	}
}

// runGeneration starts generation n (with pre, when the preparation ran
// before the previous one stopped) and serves it until it ends. An error
// means nothing started for the first generation; for a later one it is
// a startFailed ending, a crash.
func (f *Foreground) runGeneration(ctx context.Context, n int, pre *prepared) (ending, error) {
	gen, exited, err := f.startGeneration(ctx, n, pre)
	if err != nil { // held sockets that no child serves would queue clients until the next start
		f.handoff.drop(n, "the start failed: "+err.Error())
	}
	switch {
	case err != nil && exited == nil && n == 1:
		return ending{}, err
	case err != nil && exited == nil:
		f.o.Log.Error().Str("event", "exit").Int("gen", n).Err(err).Msg("could not start the child again")
		return ending{how: startFailed, why: "the start failed: " + err.Error()}, nil
	}
	e := f.serve(ctx, gen, exited, err)
	e.started = gen.Started
	return e, nil
}

// end logs why no restart is due and returns ErrGaveUp when the limit
// was reached.
func (f *Foreground) end(st proc.ExitStatus, why string, crashes int) error {
	if f.o.Policy.MaxRestarts > 0 && crashes > f.o.Policy.MaxRestarts {
		f.o.Log.Error().Str("event", "give-up").Int("exit_code", st.ExitCode()).Int("max_restarts", f.o.Policy.MaxRestarts).
			Str("reason", why).Msg("giving up: the child keeps crashing; exiting with its status")
		return fmt.Errorf("%w: %s; its last status: %s", ErrGaveUp, why, st)
	}
	f.o.Log.Info().Str("event", "exit").Int("exit_code", st.ExitCode()).Str("reason", why).Msg("not restarting; exiting with the child's status")
	return nil
}

// serve waits for the generation to end, handling requests meanwhile.
// startErr is why its start failed, if it did: the child is stopped, and
// that is a crash whatever its status (a graceful stop exits 0).
func (f *Foreground) serve(ctx context.Context, gen *Generation, exited <-chan proc.ExitStatus, startErr error) ending {
	f.oomMark = gen.oom
	if startErr != nil {
		f.o.Log.Error().Str("event", "exit").Int("gen", gen.N).Err(startErr).Msg("the start failed: stopping what it left")
		return ending{st: f.stop(gen, exited, "the start failed"), how: startFailed, why: "the start failed: " + startErr.Error()}
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case st := <-exited:
			st.OOMKilled = st.Signal == syscall.SIGKILL && f.oomMark.Since() > 0
			f.logExit(gen, st, "the child exited on its own")
			return ending{st: st, how: exitedOnItsOwn, why: "the child " + st.String()}
		case <-tick.C:
			f.noteOOM(gen)
		case r := <-f.reqs:
			if e, ok := f.request(ctx, gen, exited, r); ok {
				return e
			}
		case <-ctx.Done():
			return ending{st: f.stop(gen, exited, "safe-restart was asked to stop"), how: stoppedByUs}
		}
	}
}

// request carries out r; when it restarts the child it returns how the
// generation ended. A restart prepares the next start (the config test)
// before it stops the child: when that fails the child serves on and the
// refusal is r's answer (README.md invariant 5: never stop a server that
// cannot start again).
func (f *Foreground) request(ctx context.Context, gen *Generation, exited <-chan proc.ExitStatus, r Request) (ending, bool) {
	restart, err := f.handle(ctx, gen, r)
	if restart == "" {
		r.reply <- err
		return ending{}, false
	}
	pre, perr := f.prepare(ctx)
	if perr != nil {
		f.o.Log.Error().Str("event", "restart").Int("gen", gen.N).Str("reason", restart).Err(perr).
			Msg("restart refused before stopping: the child could not start again; it serves on")
		r.reply <- fmt.Errorf("restart refused (%s): %w", restart, perr)
		return ending{}, false
	}
	r.reply <- err
	f.o.Log.Warn().Str("event", "restart").Int("gen", gen.N).Str("reason", restart).Bool("crash", r.Crash).Msg("restarting the child")
	how := restartNow
	if r.Crash {
		how = restartCrash
	}
	f.handoff.protect() // php-fpm unlinks its socket path as it exits
	st := f.stop(gen, exited, restart)
	f.handoff.settle()
	return ending{st: st, how: how, why: restart, pre: pre}, true
}

// noteOOM reads the OOM-kill count of the child's cgroup again, logging
// the kills since the last reading (a worker killed; the master's own
// kill is named by its exit).
func (f *Foreground) noteOOM(gen *Generation) {
	m := f.oomMark.Now()
	if m.Kills > f.oomMark.Kills {
		f.o.Log.Error().Str("event", "oom").Int("gen", gen.N).Int64("oom_kills", m.Kills-f.oomMark.Kills).
			Int64("oom_kills_gen", gen.oom.Since()).Msg("the OOM killer struck in the child's memory cgroup")
	}
	f.oomMark = m
}

// logExit logs how the child ended.
func (f *Foreground) logExit(gen *Generation, st proc.ExitStatus, reason string) {
	ev := f.o.Log.Info()
	if !st.Success() {
		ev = f.o.Log.Warn()
	}
	ev = ev.Str("event", "exit").Int("gen", gen.N).Int("pid", gen.Master.PID).Int("exit_code", st.ExitCode()).
		Dur("ran", time.Since(gen.Started)).Str("reason", reason)
	if st.Signal != 0 {
		ev = ev.Str("signal", proc.SigName(st.Signal))
	}
	ev.Bool("oom_killed", st.OOMKilled).Msg("the child ended: " + st.String())
}

// handle carries out one request; it returns why the child must be
// restarted, "" when it need not.
func (f *Foreground) handle(ctx context.Context, gen *Generation, r Request) (string, error) {
	if r.Gen != 0 && r.Gen != gen.N {
		return "", ErrStaleRequest
	}
	switch r.Action {
	case ActRestart:
		return r.Reason, nil
	case ActReopen:
		return "", f.reopen(gen)
	case ActReload, ActRecycle:
		return f.reload(ctx, gen, r)
	}
	return "", fmt.Errorf("unknown action %d", r.Action)
}

// reopen sends USR1 to the child: nginx and php-fpm reopen their logs;
// Apache has no signal that only reopens them, and USR1 is its graceful
// restart, which does.
func (f *Foreground) reopen(gen *Generation) error {
	err := proc.SignalProc(f.o.ProcRoot, gen.Master, syscall.SIGUSR1)
	f.o.Log.Info().Str("event", "reopen").Int("gen", gen.N).Int("pid", gen.Master.PID).AnErr("error", err).
		Msg("sent SIGUSR1: reopen the logs")
	return err
}
