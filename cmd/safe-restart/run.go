package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	oklog "github.com/oklog/run"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/safe-restart/safe-restart/supervise"
	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/run"
	"github.com/safe-restart/safe-restart/supervise/server"
)

// runFlags are the flags of safe-restart run.
type runFlags struct {
	service, conf, serviceDir, stateDir string
	graceful                            time.Duration
	ladder                              string
	timeout                             time.Duration
	healthURL                           string
	healthEvery, healthTimeout          time.Duration
	healthFailures                      int
	maxMemory, minGrowth                string
	memoryWindow, memoryEvery           time.Duration
	restart                             string
	backoff, maxBackoff, stableAfter    time.Duration
	maxRestarts                         int
	noHandoff                           bool
}

func newRunCmd(d *deps) *cobra.Command {
	f := &runFlags{}
	c := &cobra.Command{
		Use:   "run [--service NAME --conf PATH] -- CMD ARGS...",
		Short: "Supervise a server in the foreground (containers, hosts without systemd)",
		Long: `Run starts CMD, the server in the foreground, in its own process group and
supervises it until SIGTERM or SIGINT (the stop ladder; safe-restart then exits
with the child's status: its code, or 128+signal).

  SIGHUP   verified reload (with --service: config test, the server's reload
           signal, the new generation verified; without: forwarded)
  SIGUSR1  reopen the logs (sent on to the child; for Apache USR1 is a
           graceful restart, which reopens them too)

A child that exits on its own (non-zero, or killed; an OOM kill is named as
such) is restarted after an exponential backoff (--backoff, doubling up to
--max-backoff), after its orphaned workers and, with --service, the IPC of
the dead generation are cleared; after --max-restarts crashes in a row
safe-restart gives up and exits with the child's status.

With --service nginx or php-fpm no restart refuses a connection: after every
verified start and reload safe-restart takes the child's listening sockets
(pidfd_getfd, Linux 5.6) and keeps them open through the stop and the backoff
(the kernel queues new connections), then starts the next child on them
(nginx: NGINX=3;4;, php-fpm: FPM_SOCKETS), which serves what queued. A unix
socket path php-fpm unlinks as it exits is linked back. When the sockets
cannot be held it says why and restarts plainly (--no-handoff forces it).

--health-url is checked every --health-interval; --health-failures failures in
a row restart the child (a master alive that serves nothing is down). The
memory watchdog sums the PSS of the child's tree every --memory-interval:
over --max-memory, or its PSS per process growing steadily over
--memory-window (a least-squares line rising by --min-growth over the tree
with R² >= 0.8; a pool forking workers under load is no leak), it recycles the server
gracefully (--service: php-fpm USR2, Apache USR1, nginx HUP, verified;
otherwise a restart). As PID 1 safe-restart reaps every zombie; otherwise it
becomes the subreaper of its descendants. Every start, exit, restart, reap
and recycle is one log line with an "event" field and its reason.`,
		Example: `  safe-restart run --service php8.2-fpm --conf /etc/php/8.2/fpm/php-fpm.conf \
    --health-url http://127.0.0.1/ping.php --max-memory 1G --memory-window 30m \
    -- php-fpm8.2 -F -y /etc/php/8.2/fpm/php-fpm.conf
  safe-restart run --service nginx -- nginx -g 'daemon off;'
  safe-restart run --max-restarts 5 -- my-daemon --foreground`,
		Args: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 0 || len(args) == 0 {
				return usagef("e.g. safe-restart run --service nginx -- nginx -g 'daemon off;'", "run takes the command after --")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error { return runRun(c.Context(), d, f, args) },
	}
	f.register(c)
	return c
}

func (f *runFlags) register(c *cobra.Command) {
	fl := c.Flags()
	fl.StringVar(&f.service, "service", "", "the server's profile (apache2, nginx, php8.2-fpm, or a service file): verified reloads and recycles, its ladder, orphan and IPC clearing")
	fl.StringVar(&f.conf, "conf", "", "the server's main config file, as CMD uses it (default: the profile's)")
	serviceDirFlag(c, &f.serviceDir)
	fl.StringVar(&f.stateDir, "state-dir", string(supervise.DefaultStateDir), "where safe-restart records the IPC lineage of each start")
	fl.DurationVar(&f.graceful, "graceful-timeout", server.DefaultGracefulWait, "how long the graceful stop may take before TERM (0 skips it)")
	fl.StringVar(&f.ladder, "ladder", "", "the stop ladder as SIGNAL:WAIT[:all] steps (overrides --graceful-timeout)")
	fl.DurationVar(&f.timeout, "timeout", 20*time.Second, "how long a start may take to serve")
	fl.StringVar(&f.healthURL, "health-url", "", "URL whose answer (below 500) proves the server serves: best through the front server (nginx before php-fpm)")
	fl.DurationVar(&f.healthEvery, "health-interval", 10*time.Second, "time between health checks")
	fl.DurationVar(&f.healthTimeout, "health-timeout", 5*time.Second, "how long one health check may take")
	fl.IntVar(&f.healthFailures, "health-failures", 3, "health check failures in a row that restart the child")
	fl.StringVar(&f.maxMemory, "max-memory", "", "total PSS of the child's tree that triggers a graceful recycle, e.g. 512M, 2G (default: none)")
	fl.DurationVar(&f.memoryWindow, "memory-window", 0, "window over which steady memory growth triggers a recycle, e.g. 30m (default: off)")
	fl.DurationVar(&f.memoryEvery, "memory-interval", 0, "time between memory samples (default: --memory-window/30, at least 1s; 5s without a window)")
	fl.StringVar(&f.minGrowth, "min-growth", "", "growth over --memory-window that counts as a leak (default: 10% of --max-memory, else 64M)")
	fl.StringVar(&f.restart, "restart", "on-failure", "when to restart a child that exited on its own: on-failure or always")
	fl.DurationVar(&f.backoff, "backoff", time.Second, "delay before the first restart after a crash; doubles with each crash in a row")
	fl.DurationVar(&f.maxBackoff, "max-backoff", time.Minute, "the longest delay between restarts")
	fl.IntVar(&f.maxRestarts, "max-restarts", 10, "crash restarts in a row before giving up (0: no limit)")
	fl.DurationVar(&f.stableAfter, "stable-after", 10*time.Minute, "a child that ran this long starts a new series of restarts")
	fl.BoolVar(&f.noHandoff, "no-handoff", false,
		"do not hold the listening sockets between generations (nginx, php-fpm): they close with the child, and connections are refused until the next one listens")
}

// options turns the flags and the command into the supervisor's options.
func (f *runFlags) options(d *deps, argv []string) (run.ForegroundOptions, error) {
	o := run.ForegroundOptions{Argv: argv, Conf: f.conf, HealthURL: f.healthURL, Timeout: f.timeout,
		LineageDir: supervise.StateDir(f.stateDir).Lineages(), NoHandoff: f.noHandoff, Log: *d.log}
	switch f.restart {
	case "on-failure":
	case "always":
		o.Policy.OnSuccess = true
	default:
		return o, usagef("use on-failure or always", "bad --restart %q", f.restart)
	}
	o.Policy.Backoff, o.Policy.MaxBackoff, o.Policy.MaxRestarts, o.Policy.StableAfter = f.backoff, f.maxBackoff, f.maxRestarts, f.stableAfter
	if err := o.Policy.Validate(); err != nil || f.backoff == 0 || f.timeout <= 0 || f.graceful < 0 {
		return o, usagef("give positive durations and a --max-restarts of 0 or more", "bad restart settings (--backoff %s, --max-backoff %s, --max-restarts %d, --stable-after %s, --timeout %s, --graceful-timeout %s)",
			f.backoff, f.maxBackoff, f.maxRestarts, f.stableAfter, f.timeout, f.graceful)
	}
	if f.healthEvery <= 0 || f.healthTimeout <= 0 || f.healthFailures <= 0 || f.memoryWindow < 0 || f.memoryEvery < 0 {
		return o, usagef("give positive intervals and --health-failures", "bad health or memory settings")
	}
	if f.service == "" {
		if f.conf != "" || f.ladder != "" {
			return o, usagef("add --service NAME", "--conf and --ladder need --service")
		}
		return o, nil
	}
	p, err := server.ResolveService(f.service, f.serviceDir)
	if err != nil {
		return o, err
	}
	o.Profile = &p
	o.Ladder = p.Ladder(f.graceful)
	if f.ladder != "" {
		if o.Ladder, err = proc.ParseLadder(f.ladder); err != nil {
			return o, usagef("e.g. --ladder QUIT:30s,TERM:10s,KILL:5s:all", "bad --ladder: %v", err)
		}
	}
	return o, nil
}

// memoryWatch is the watchdog the flags ask for; ok is false when none.
func (f *runFlags) memoryWatch(fg *run.Foreground) (run.MemoryWatch, bool, error) {
	maxMem, err := parseBytes("--max-memory", f.maxMemory)
	if err != nil {
		return run.MemoryWatch{}, false, err
	}
	minGrowth, err := parseBytes("--min-growth", f.minGrowth)
	if err != nil {
		return run.MemoryWatch{}, false, err
	}
	m := run.MemoryWatch{F: fg, Max: maxMem, Window: f.memoryWindow, MinGrowth: minGrowth, Every: f.memoryEvery}
	return m, maxMem > 0 || f.memoryWindow > 0, nil
}

// parseBytes reads a size: a number of bytes with an optional K, M or G
// suffix (powers of 1024; "MiB" and "MB" read the same).
func parseBytes(flag, s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	num := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B"), "I")
	shift := 0
	switch {
	case strings.HasSuffix(num, "K"):
		shift = 10
	case strings.HasSuffix(num, "M"):
		shift = 20
	case strings.HasSuffix(num, "G"):
		shift = 30
	}
	if shift > 0 {
		num = num[:len(num)-1]
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)>>shift {
		return 0, usagef("e.g. 512M or 2G", "bad %s %q", flag, s)
	}
	return n << shift, nil
}

// runRun builds the oklog/run group (the child, the signal handler, the
// health checker, the memory watchdog, each interruptible) and exits with
// the child's status.
func runRun(ctx context.Context, d *deps, f *runFlags, argv []string) error {
	o, err := f.options(d, argv)
	if err != nil {
		return err
	}
	fg, err := run.NewForeground(o)
	if err != nil {
		return err
	}
	mem, watchMemory, err := f.memoryWatch(fg)
	if err != nil {
		return err
	}
	var g oklog.Group
	var status proc.ExitStatus
	var runErr error
	{ // the child: runs until it exits for good; interrupted, it climbs the stop ladder
		cctx, cancel := context.WithCancel(ctx)
		g.Add(func() error {
			status, runErr = fg.Run(cctx)
			return errChildDone
		}, func(error) { cancel() })
	}
	// The signals stay caught until the group is done: once TERM ends the
	// handler, the stop ladder still runs, and a HUP or USR1 left to its
	// default action would kill safe-restart and orphan the child.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	{ // signals: HUP reload, USR1 reopen, TERM and INT end the group
		sctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error { return handleSignals(sctx, sigs, fg, *d.log) }, func(error) { cancel() })
	}
	if f.healthURL != "" || o.Profile != nil {
		hctx, cancel := context.WithCancel(context.Background())
		h := run.HealthWatch{F: fg, Every: f.healthEvery, Failures: f.healthFailures, Timeout: f.healthTimeout}
		g.Add(func() error { return h.Run(hctx) }, func(error) { cancel() })
	}
	if watchMemory {
		mctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error { return mem.Run(mctx) }, func(error) { cancel() })
	}
	_ = g.Run()
	return childExit(status, runErr)
}

// errChildDone ends the group when the supervisor returns.
var errChildDone = errors.New("the supervised child is done")

// childExit maps the child's last status to safe-restart's exit.
func childExit(st proc.ExitStatus, err error) error {
	switch {
	case err != nil && !errors.Is(err, run.ErrGaveUp):
		return err // nothing could start: a config test refused, a command not found
	case err != nil:
		return &exitError{code: max(st.ExitCode(), exitFailed), err: err}
	case st.ExitCode() != 0:
		return &exitError{code: st.ExitCode(), err: fmt.Errorf("the child %s", st)}
	}
	return nil
}

// handleSignals turns the signals caught on sigs into requests until ctx
// is done or TERM or INT arrives (which ends the group: the child's
// interrupt stops it). Signals arriving after it returned are dropped.
func handleSignals(ctx context.Context, sigs <-chan os.Signal, fg *run.Foreground, log zerolog.Logger) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case s := <-sigs:
			sig := s.(syscall.Signal)
			switch sig {
			case syscall.SIGTERM, syscall.SIGINT:
				log.Info().Str("signal", sig.String()).Msg("received a stop signal: stopping the child with the ladder")
				return fmt.Errorf("received %v", sig)
			case syscall.SIGHUP:
				_ = fg.Do(ctx, run.Request{Action: run.ActReload, Reason: "SIGHUP received"}) // logged by the supervisor
			case syscall.SIGUSR1:
				_ = fg.Do(ctx, run.Request{Action: run.ActReopen, Reason: "SIGUSR1 received"})
			}
		}
	}
}
