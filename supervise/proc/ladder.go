package proc

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/safe-restart/safe-restart/ipcguard"
)

// Step is one rung of a stop ladder: a signal, whom it goes to, and how
// long to wait for the whole tree to exit before the next rung.
type Step struct {
	Signal syscall.Signal `json:"signal"`
	Wait   time.Duration  `json:"wait"`
	// All sends the signal to every surviving member of the tree, not only
	// the master: event/worker children orphaned by a killed master ignore
	// TERM and only die of KILL, sent to them directly.
	All bool `json:"all"`
}

func (s Step) String() string {
	to := "master"
	if s.All {
		to = "all"
	}
	return fmt.Sprintf("%s to %s, wait %s", SigName(s.Signal), to, s.Wait)
}

// Ladder is a stop ladder: steps tried in order until the tree has exited.
type Ladder []Step

// StepReport says what one step did.
type StepReport struct {
	Step      Step          `json:"step"`
	Sent      []int         `json:"sent"`      // pids signalled
	Waited    time.Duration `json:"waited"`    // how long the step waited
	Survivors []int         `json:"survivors"` // pids verified alive when it gave up
}

// LadderRun is one run of a ladder against a recorded process tree.
type LadderRun struct {
	ProcRoot string // "/proc" when empty
	// Master receives the signals of steps without All.
	Master ipcguard.Proc
	// Members is the whole recorded tree, master included: children and
	// re-parented orphans. The ladder is done only when all have exited.
	Members []ipcguard.Proc
	// Before, when set, runs before a step sends its signal; an error ends
	// the ladder there, that step unsent.
	Before func(context.Context, Step) error
	// Linger, when set, ends a master's idle wait (see Linger).
	Linger *Linger
	Log    zerolog.Logger
	ops    ladderOps // zero value: the real syscalls
}

// Linger ends the wait of a master that outlives its tree with nothing
// left to do: after a step sending After, once every other member has
// exited, the master is sent Send. Apache's master, stopping gracefully
// (WINCH), sleeps a second between looks at its children (prefork.c and
// event.c: apr_sleep of a second, then it reaps them), so it outlives
// them by up to a second with no listener and no client; TERM ends that
// sleep, and the stop, at once (measured: 16 ms instead of 1 s).
type Linger struct {
	After, Send syscall.Signal
	// Tree reads the master's tree again (the recorded one may miss a
	// child forked since): Send waits until it holds the master alone.
	// Without it the master is left to end its wait itself.
	Tree func() ([]ipcguard.Proc, error)
	// Ready, when set, runs before Send is sent; an error leaves the
	// master to end its wait itself.
	Ready func() error
}

// ladderOps are the side effects of a ladder, replaced in tests.
type ladderOps struct {
	signal func(procRoot string, p ipcguard.Proc, sig syscall.Signal) error
	wait   func(ctx context.Context, procRoot string, procs []ipcguard.Proc, d time.Duration,
		progress func([]ipcguard.Proc, time.Duration)) ([]ipcguard.Proc, error)
}

func (o ladderOps) orReal() ladderOps {
	if o.signal == nil {
		o.signal = SignalProc
	}
	if o.wait == nil {
		o.wait = waitExited
	}
	return o
}

// Run climbs the ladder. Each step signals its targets, then waits for the
// whole tree; it moves to the next step only when a member is verified
// still alive (README.md invariant 2), and says which ones and how long they
// were given. A pid reused by another process is never signalled: Run stops
// with ErrPIDReused. When the last step leaves survivors the error wraps
// ErrStillAlive.
func (l Ladder) Run(ctx context.Context, r LadderRun) ([]StepReport, error) {
	ops := r.ops.orReal()
	root := RootOr(r.ProcRoot)
	alive := r.Members
	var reports []StepReport
	for i, step := range l {
		if err := ctx.Err(); err != nil {
			return reports, err // never start a step, or send its signal, once cancelled
		}
		rep := StepReport{Step: step}
		to := targets(step, r.Master, alive)
		if len(to) == 0 {
			// The master is gone and orphans remain: waiting on a signal
			// nobody was sent would only delay the step that reaches them.
			r.Log.Warn().Int("step", i+1).Str("signal", SigName(step.Signal)).Ints("alive", PIDs(alive)).
				Msg("master already exited: skipping a step meant for it")
			reports = append(reports, rep)
			continue
		}
		if r.Before != nil {
			if err := r.Before(ctx, step); err != nil {
				return append(reports, rep), err
			}
		}
		for _, p := range to {
			err := ops.signal(root, p, step.Signal)
			if errors.Is(err, ErrPIDReused) && step.All && p.Key() != r.Master.Key() {
				// That member exited and its pid went to another process: it
				// is done, and the new owner is never signalled.
				r.Log.Warn().Int("pid", p.PID).Msg("member exited and its pid was reused: not signalled")
				continue
			}
			if err != nil {
				return append(reports, rep), err
			}
			rep.Sent = append(rep.Sent, p.PID)
		}
		r.Log.Info().Int("step", i+1).Str("signal", SigName(step.Signal)).Ints("pids", rep.Sent).
			Dur("wait", step.Wait).Int("tree", len(alive)).Msg("sent signal, waiting for the tree to exit")
		start := time.Now()
		survivors, err := r.waitStep(ctx, ops, root, alive, step, func(left []ipcguard.Proc, waited time.Duration) {
			r.Log.Info().Int("step", i+1).Int("alive", len(left)).Dur("waited", waited).Dur("wait", step.Wait).
				Msg(fmt.Sprintf("waiting for %d processes: %s of %s", len(left), waited.Round(time.Second), step.Wait))
		})
		rep.Waited, rep.Survivors = time.Since(start), PIDs(survivors)
		reports = append(reports, rep)
		if err != nil {
			return reports, err
		}
		if len(survivors) == 0 {
			r.Log.Info().Int("step", i+1).Dur("took", rep.Waited).Msg("process tree exited")
			return reports, nil
		}
		r.Log.Warn().Int("step", i+1).Str("signal", SigName(step.Signal)).Ints("survivors", rep.Survivors).
			Dur("wait", step.Wait).Msg("processes verified alive after the step's wait: escalating")
		alive = survivors
	}
	return reports, fmt.Errorf("%w: pids %v outlived every step", ErrStillAlive, PIDs(alive))
}

// waitStep waits up to step.Wait for alive to exit and returns the
// members verified still alive. After a step r.Linger applies to, it
// waits for every member but the master first, the tree read again each
// time they have (lingerOthers); then the master is sent r.Linger.Send
// (through r.Before, as a step's signal is) and waited for in what is
// left.
func (r LadderRun) waitStep(ctx context.Context, ops ladderOps, root string, alive []ipcguard.Proc, step Step,
	progress func([]ipcguard.Proc, time.Duration),
) ([]ipcguard.Proc, error) {
	var master, others []ipcguard.Proc
	for _, p := range alive {
		if p.Key() == r.Master.Key() {
			master = append(master, p)
		} else {
			others = append(others, p)
		}
	}
	if r.Linger == nil || r.Linger.Tree == nil || step.Signal != r.Linger.After || len(master) == 0 {
		return ops.wait(ctx, root, alive, step.Wait, progress)
	}
	start := time.Now()
	left, err := r.lingerOthers(ctx, ops, root, others, step.Wait, progress)
	if ctx.Err() != nil || len(left) > 0 {
		alive, werr := ops.wait(ctx, root, master, 0, nil) // verified alive, or not
		return append(left, alive...), errors.Join(ctx.Err(), werr)
	}
	rest := step.Wait - time.Since(start)
	if err == nil {
		err = r.endLinger(ctx)
	}
	if err != nil {
		r.Log.Warn().Err(err).Int("pid", r.Master.PID).Msg("leaving the master to end its wait itself")
		return ops.wait(ctx, root, master, rest, progress)
	}
	r.Log.Info().Int("pid", r.Master.PID).Str("signal", SigName(r.Linger.Send)).
		Msg("every other process of the tree has exited: ending the master's wait")
	return ops.wait(ctx, root, master, rest, progress)
}

// lingerOthers waits up to d for others to exit, then reads the tree
// again (r.Linger.Tree) and waits for any member but the master it finds
// alive, until none is left; it returns those verified alive at d.
func (r LadderRun) lingerOthers(ctx context.Context, ops ladderOps, root string, others []ipcguard.Proc, d time.Duration,
	progress func([]ipcguard.Proc, time.Duration),
) ([]ipcguard.Proc, error) {
	start := time.Now()
	exited := map[ipcguard.ProcKey]bool{}
	for {
		left, err := ops.wait(ctx, root, others, d-time.Since(start), progress)
		if err != nil || len(left) > 0 {
			return left, err
		}
		for _, p := range others {
			exited[p.Key()] = true
		}
		tree, err := r.Linger.Tree()
		if err != nil {
			return nil, err
		}
		others = nil
		for _, p := range tree {
			if p.Key() != r.Master.Key() && p.Alive() && !exited[p.Key()] {
				others = append(others, p)
			}
		}
		if len(others) == 0 {
			return nil, nil
		}
	}
}

// endLinger sends the master r.Linger.Send once r.Linger.Ready and
// r.Before let it.
func (r LadderRun) endLinger(ctx context.Context) error {
	if r.Linger.Ready != nil {
		if err := r.Linger.Ready(); err != nil {
			return err
		}
	}
	if r.Before != nil {
		if err := r.Before(ctx, Step{Signal: r.Linger.Send}); err != nil {
			return err
		}
	}
	return r.ops.orReal().signal(RootOr(r.ProcRoot), r.Master, r.Linger.Send)
}

// targets returns whom a step signals: the master while it lives, or every
// survivor for an All step.
func targets(step Step, master ipcguard.Proc, alive []ipcguard.Proc) []ipcguard.Proc {
	if step.All {
		return alive
	}
	for _, p := range alive {
		if p.PID == master.PID && p.StartTicks == master.StartTicks {
			return []ipcguard.Proc{p}
		}
	}
	return nil
}

func PIDs(ps []ipcguard.Proc) []int {
	out := make([]int, len(ps))
	for i, p := range ps {
		out[i] = p.PID
	}
	return out
}

// ParseSignal accepts "15", "TERM" and "SIGTERM" (any case), as runc does.
func ParseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("bad signal number %d", n)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}

// ParseWith parses a signal (ParseSignal) and checks it is fit for its
// use (checkStopSignal, checkReloadSignal).
func ParseWith(s string, check func(syscall.Signal) error) (syscall.Signal, error) {
	sig, err := ParseSignal(s)
	if err != nil {
		return 0, err
	}
	return sig, check(sig)
}

// CheckStopSignal refuses a signal no stop can use: one that freezes a
// process instead of ending it (STOP, TSTP, TTIN, TTOU), one whose
// default is to do nothing and that no server stops on (CONT, CHLD, URG),
// or one the C library keeps for itself (32, 33).
// A ladder of them would leave the server frozen, or wait out every step
// for nothing. WINCH, ignored by default too, is Apache's graceful stop.
func CheckStopSignal(sig syscall.Signal) error {
	switch sig {
	case syscall.SIGSTOP, syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU:
		return fmt.Errorf("%s freezes a process, it ends none", SigName(sig))
	case syscall.SIGCONT, syscall.SIGCHLD, syscall.SIGURG:
		return fmt.Errorf("%s ends no process", SigName(sig))
	case sigRTMin - 2, sigRTMin - 1:
		return fmt.Errorf("signal %d is the C library's own (its threads' cancellation and set-id calls): it ends no process", sig)
	}
	return nil
}

// CheckReloadSignal refuses a signal that reloads nothing: daemons
// document HUP, USR1, USR2 or WINCH for a reload (or a real-time signal);
// any other signal stops, freezes, kills or is ignored by a process that
// does not handle it, and a reload verified afterwards could pass on a
// frozen daemon (the kernel still completes a connection to it).
func CheckReloadSignal(sig syscall.Signal) error {
	switch {
	case sig == syscall.SIGHUP, sig == syscall.SIGUSR1, sig == syscall.SIGUSR2, sig == syscall.SIGWINCH:
		return nil
	case sig >= sigRTMin && sig <= sigRTMax:
		return nil
	}
	return fmt.Errorf("%s reloads no daemon: use the one it documents (HUP, USR1, USR2, WINCH, or a real-time signal)", SigName(sig))
}

// sigRTMin and sigRTMax bound the real-time signals a program may use
// (the C library keeps the first two for itself).
const (
	sigRTMin = syscall.Signal(34)
	sigRTMax = syscall.Signal(64)
)

// SigName is "SIGTERM" for syscall.SIGTERM.
func SigName(sig syscall.Signal) string {
	if n := unix.SignalName(sig); n != "" {
		return n
	}
	return "signal " + strconv.Itoa(int(sig))
}

// ParseLadder reads a ladder written as comma-separated steps
// SIGNAL:WAIT[:all], e.g. "WINCH:30s,TERM:10s,KILL:5s:all". Every step's
// signal must be one a stop can use (checkStopSignal).
func ParseLadder(s string) (Ladder, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("empty ladder: give at least one step, e.g. TERM:10s,KILL:5s:all")
	}
	var l Ladder
	for _, part := range strings.Split(s, ",") {
		f := strings.Split(strings.TrimSpace(part), ":")
		if len(f) < 2 || len(f) > 3 || (len(f) == 3 && f[2] != "all") {
			return nil, fmt.Errorf("ladder step %q: want SIGNAL:WAIT or SIGNAL:WAIT:all", part)
		}
		sig, err := ParseWith(f[0], CheckStopSignal)
		if err != nil {
			return nil, fmt.Errorf("ladder step %q: %w", part, err)
		}
		wait, err := time.ParseDuration(f[1])
		if err != nil || wait <= 0 {
			return nil, fmt.Errorf("ladder step %q: bad wait %q", part, f[1])
		}
		l = append(l, Step{Signal: sig, Wait: wait, All: len(f) == 3})
	}
	return l, nil
}

// GracefulLadder is the ladder every built-in server shares: sig (its
// graceful stop) for graceful, skipped when graceful is 0, then TERM (the
// server's fast stop, which reclaims its children) for 10 s, then KILL to
// every survivor, which is what the workers of a master killed meanwhile
// need.
func GracefulLadder(sig syscall.Signal, graceful time.Duration) Ladder {
	l := Ladder{
		{Signal: syscall.SIGTERM, Wait: 10 * time.Second},
		{Signal: syscall.SIGKILL, Wait: 5 * time.Second, All: true},
	}
	if graceful > 0 {
		l = append(Ladder{{Signal: sig, Wait: graceful}}, l...)
	}
	return l
}
