package supervise

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/ipcguard"
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
	Profile *Profile
	Conf    string // the profile's config file ("" means the profile's)
	// Ladder stops the child; nil means the profile's with
	// DefaultGracefulWait, or TERM for 10 s then KILL for any command.
	Ladder Ladder
	// HealthURL is the health check (see HealthWatch); with a profile the
	// child's listeners must accept too.
	HealthURL string
	// Timeout bounds a start: the child must serve within it (20 s).
	Timeout    time.Duration
	Policy     RestartPolicy
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
	oom     oomCounter // the child's cgroup's OOM kills when it served
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
	// Memory holds the figures behind a recycle, logged with it.
	Memory *MemoryFigures
	reply  chan error
}

// ErrStaleRequest reports a request about a generation that no longer runs.
var ErrStaleRequest = errors.New("the generation the request was about no longer runs")

// Foreground supervises one child in the foreground. Run owns the child;
// other goroutines ask through Do and read Current.
type Foreground struct {
	o    ForegroundOptions
	reqs chan Request
	cur  atomic.Pointer[Generation]
	reap *reaper
	// group is the previous generation's process group, cleared before
	// the next start.
	group int
}

// NewForeground checks o and returns the supervisor.
func NewForeground(o ForegroundOptions) (*Foreground, error) {
	if len(o.Argv) == 0 {
		return nil, errors.New("no command to supervise")
	}
	if err := o.Policy.Validate(); err != nil {
		return nil, err
	}
	o.ProcRoot = or(o.ProcRoot, "/proc")
	o.Timeout = or(o.Timeout, 20*time.Second)
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
	stoppedByUs                   // ctx done: the stop ladder ran
	restartNow                    // a request restarted it: start again at once
)

// Run starts the child and supervises it until ctx is done (then the
// stop ladder stops it) or it exits with no restart due. It returns the
// child's last exit status; after MaxRestarts crashes in a row the error
// wraps ErrGaveUp. Every start, exit, restart, reap and recycle is one log
// line with an "event" field and its reason.
func (f *Foreground) Run(ctx context.Context) (ExitStatus, error) {
	f.reap = newReaper(f.o.ProcRoot, becomeReaper(f.o.Log), f.o.Log)
	reapCtx, stopReaping := context.WithCancel(context.WithoutCancel(ctx))
	defer stopReaping()
	go f.reap.run(reapCtx)
	crashes := 0
	for n := 1; ; n++ {
		gen, exited, err := f.startGeneration(ctx, n)
		if err != nil && exited == nil {
			return ExitStatus{Code: 127}, err // nothing started
		}
		st, how := f.serve(ctx, gen, exited, err)
		f.cur.Store(nil)
		switch how {
		case stoppedByUs:
			return st, nil
		case restartNow:
			continue
		}
		var why string
		crashes, why = f.o.Policy.wants(st, time.Since(gen.Started), crashes)
		if why != "" {
			return st, f.end(st, why, crashes)
		}
		delay := f.o.Policy.delay(crashes)
		f.o.Log.Warn().Str("event", "restart").Int("gen", n).Int("restart", crashes).Int("max_restarts", f.o.Policy.MaxRestarts).
			Dur("backoff", delay).Str("reason", "the child "+st.String()).Msg("restarting the child after a backoff")
		select {
		case <-ctx.Done():
			f.o.Log.Info().Str("event", "exit").Int("exit_code", st.ExitCode()).Msg("stopped while waiting to restart")
			return st, nil
		case <-time.After(delay):
		}
	}
}

// end logs why no restart is due and returns ErrGaveUp when the limit
// was reached.
func (f *Foreground) end(st ExitStatus, why string, crashes int) error {
	if f.o.Policy.MaxRestarts > 0 && crashes > f.o.Policy.MaxRestarts {
		f.o.Log.Error().Str("event", "give-up").Int("exit_code", st.ExitCode()).Int("max_restarts", f.o.Policy.MaxRestarts).
			Str("reason", why).Msg("giving up: the child keeps crashing; exiting with its status")
		return fmt.Errorf("%w: %s; its last status: %s", ErrGaveUp, why, st)
	}
	f.o.Log.Info().Str("event", "exit").Int("exit_code", st.ExitCode()).Str("reason", why).Msg("not restarting; exiting with the child's status")
	return nil
}

// serve waits for the generation to end, handling requests meanwhile.
// startErr is why its start failed, if it did: the child is stopped and
// the restart policy decides.
func (f *Foreground) serve(ctx context.Context, gen *Generation, exited <-chan ExitStatus, startErr error) (ExitStatus, outcome) {
	if startErr != nil {
		f.o.Log.Error().Str("event", "exit").Int("gen", gen.N).Err(startErr).Msg("the start failed: stopping what it left")
		return f.stop(gen, exited, "the start failed"), exitedOnItsOwn
	}
	for {
		select {
		case st := <-exited:
			st.OOMKilled = st.Signal == syscall.SIGKILL && gen.oom.since() > 0
			f.logExit(gen, st, "the child exited on its own")
			return st, exitedOnItsOwn
		case r := <-f.reqs:
			restart, err := f.handle(ctx, gen, r)
			r.reply <- err
			if restart != "" {
				f.o.Log.Warn().Str("event", "restart").Int("gen", gen.N).Str("reason", restart).Msg("restarting the child")
				return f.stop(gen, exited, restart), restartNow
			}
		case <-ctx.Done():
			return f.stop(gen, exited, "safe-restart was asked to stop"), stoppedByUs
		}
	}
}

// logExit logs how the child ended.
func (f *Foreground) logExit(gen *Generation, st ExitStatus, reason string) {
	ev := f.o.Log.Info()
	if !st.Success() {
		ev = f.o.Log.Warn()
	}
	ev = ev.Str("event", "exit").Int("gen", gen.N).Int("pid", gen.Master.PID).Int("exit_code", st.ExitCode()).
		Dur("ran", time.Since(gen.Started)).Str("reason", reason)
	if st.Signal != 0 {
		ev = ev.Str("signal", sigName(st.Signal))
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
	err := signalProc(f.o.ProcRoot, gen.Master, syscall.SIGUSR1)
	f.o.Log.Info().Str("event", "reopen").Int("gen", gen.N).Int("pid", gen.Master.PID).AnErr("error", err).
		Msg("sent SIGUSR1: reopen the logs")
	return err
}
