package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/safe-restart/safe-restart/supervise"
	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/server"
	"github.com/safe-restart/safe-restart/supervise/verify"
)

func newReloadCmd(d *deps) *cobra.Command {
	o := &serverFlags{}
	var r reloadFlags
	c := &cobra.Command{
		Use:   "reload SERVICE",
		Short: "Verified in-place reload, falling back to a verified restart; exit 4 when it had to recover the server",
		Long: `Reload runs the config test (exit 3 on failure, nothing touched). For Apache it
then proves the new configuration can run: a trial start in throwaway private
namespaces (mod_ssl checks that a key matches its certificate only at start,
after 'apache2 -t' said Syntax OK; a reload with such a key kills the server),
and a bind check of every new listen address; a failure is exit 3, quoting the
server's own lines, nothing touched (--no-trial skips it). Then it asks the
master for a new generation in place, keeping its listeners: no connection is
refused. Apache: USR1 (HUP with --hard); nginx: HUP; php-fpm: USR2 (it
re-executes, and a daemonized one changes pid: the pidfile is followed and the
new master proven). It verifies the master (the same live process, or the one
php-fpm's pidfile names now), that it logged the new generation, that new
children serve and the health check passes, and that no fatal line appeared
since the signal. A reload that would be unsafe (too few free semaphore sets, a
master near glibc's 1024 pthread keys, --max-reloads reached) or --full is done
as a verified restart instead. If the server was not running or the reload
killed it (ENOSPC on a mutex, exhausted pthread keys, a php-fpm re-exec that
died: failures the servers' own reloads report with exit 0), the leftovers are
cleared, a verified start brings it back, and the exit code is 4. When nginx
refuses the new configuration at reload time it keeps the old one: exit 1,
nothing else is touched. While it acts, it probes every listener every 5 ms
and prints a receipt of what clients saw (answered, refused, reset, failed,
the longest gap; --no-receipt turns it off).`,
		Example: `  safe-restart reload apache2
  safe-restart apache2                 # the same
  safe-restart reload apache2 --hard   # HUP: requests in flight are cut
  safe-restart nginx
  safe-restart php8.2-fpm --logs       # logrotate's postrotate
  safe-restart apache2 --full          # a new master: after a binary or module upgrade
  safe-restart /etc/myapp/safe-restart.toml   # any daemon, described by a service file`,
		Args: exactArgs(1, serviceArg),
		RunE: func(c *cobra.Command, args []string) error { return runReload(c.Context(), d, args[0], o, &r) },
	}
	o.register(c, true, true)
	o.registerActing(c)
	r.register(c)
	return c
}

// reloadFlags are the flags of a reload (also those of safe-restart SERVICE).
type reloadFlags struct {
	hard       bool
	full       bool
	maxReloads int
	jitter     time.Duration
	logs       bool
	statusURL  string
	drain      time.Duration
}

func (r *reloadFlags) register(c *cobra.Command) {
	fl := c.Flags()
	fl.BoolVar(&r.full, "full", false, "a verified restart (new master: binary or module upgrade) instead of the reload; the same preflight and recovery")
	fl.BoolVar(&r.hard, "hard", false, "send HUP (restart in place, requests in flight cut) instead of USR1 (graceful)")
	fl.IntVar(&r.maxReloads, "max-reloads", 0, "restart instead once the master has been reloaded this many times, as --status-url or else its error log counts (0: no budget)")
	fl.StringVar(&r.statusURL, "status-url", "", "for --max-reloads: the status page that counts the master's reloads (Apache: mod_status, e.g. http://127.0.0.1/server-status?auto); the error log and its rotated files are the fallback")
	fl.DurationVar(&r.jitter, "jitter", 0, "first wait a random time up to this long, so that a fleet's cron jobs do not act in the same second")
	fl.BoolVar(&r.logs, "logs", false, "for logrotate: then wait (up to --timeout) until no server process holds a rotated log, so compressing or deleting it is safe")
	fl.DurationVar(&r.drain, "drain-timeout", 0, "how long the older generation may finish its requests after the verified reload before TERM, then KILL, end it "+
		"(0: it is reported and not waited for, as the server's own reload leaves it; nginx's worker_shutdown_timeout and php-fpm's process_control_timeout are enforced by the servers themselves)")
}

// checkStatusURL refuses a --status-url that is not an http(s) URL, or
// that nothing would read (no --max-reloads).
func (r *reloadFlags) checkStatusURL() error {
	if r.statusURL == "" {
		return nil
	}
	if r.maxReloads == 0 {
		return usagef("give --max-reloads too", "--status-url is read only to count reloads for --max-reloads")
	}
	return validStatusURL(r.statusURL)
}

// wait sleeps a random time up to jitter, or until ctx ends.
func (r *reloadFlags) wait(ctx context.Context, d *deps) error {
	if r.jitter <= 0 {
		return nil
	}
	delay := time.Duration(rand.Int64N(int64(r.jitter)))
	d.log.Info().Dur("delay", delay).Msg("waiting the jitter delay")
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(delay):
		return nil
	}
}

// errRecovered carries exit code 4: the service is up again, but only
// because a verified start replaced a reload that could not keep it up.
var errRecovered = errors.New("reload did not keep the server up; a verified start recovered it")

func runReload(ctx context.Context, d *deps, service string, o *serverFlags, r *reloadFlags) error {
	if r.full && r.hard {
		return usagef("--full restarts; --hard picks the reload signal", "--full and --hard exclude each other")
	}
	if r.maxReloads < 0 || r.jitter < 0 {
		return usagef("give 0 or more", "bad --max-reloads %d or --jitter %s", r.maxReloads, r.jitter)
	}
	if r.drain < 0 {
		return usagef("give 0 (not waited for) or more, e.g. 5m", "bad --drain-timeout %s", r.drain)
	}
	if err := r.checkStatusURL(); err != nil {
		return err
	}
	if err := r.wait(ctx, d); err != nil {
		return err
	}
	p, ladder, lock, err := o.begin(ctx, d, service)
	if err != nil {
		return err
	}
	defer lock.Release()
	service = p.Name // a service file's name, not its path
	stopOpts, startOpts := o.options(d, service, p, ladder)
	rep, err := supervise.Reload(ctx, supervise.ReloadOptions{Start: startOpts, Stop: stopOpts, Hard: r.hard, Full: r.full, MaxReloads: r.maxReloads, StatusURL: r.statusURL,
		SampleDir: supervise.StateDir(o.stateDir).Samples(), DrainTimeout: r.drain})
	d.receipt = rep.Receipt
	if o.json {
		if jerr := writeJSON(d.stdout, rep); jerr != nil {
			return jerr
		}
	} else {
		if err == nil {
			writeReloadSummary(d, service, r.full, rep)
		}
		if rep.Restart != nil {
			writeHooks(d, rep.Restart.Hooks)
		}
		writeReceipt(d, rep.Receipt)
		writeDrain(d, rep.Drain)
	}
	if err == nil && r.logs {
		err = waitLogs(ctx, d, p, o)
	}
	switch {
	case err != nil && rep.Acted():
		return &exitError{code: exitFailed, err: err}
	case err != nil:
		return err
	case rep.Recovered:
		return &exitError{code: exitRecovered, err: errRecovered}
	}
	return nil
}

func writeReloadSummary(d *deps, service string, full bool, rep supervise.ReloadReport) {
	switch {
	case rep.Recovered:
		d.printf("%s recovered: %s; started master %d\n", service, rep.Fallback, rep.Restart.Start.Master.PID)
	case rep.Restart != nil && full:
		d.printf("restarted %s (--full): master %d\n", service, rep.Restart.Start.Master.PID)
	case rep.Restart != nil:
		d.printf("%s restarted instead of reloaded (%s): master %d\n", service, rep.Fallback, rep.Restart.Start.Master.PID)
	default:
		d.printf("reloaded %s: master %d (%s), new generation %v replaced %v\n", service, rep.Master.PID, rep.Signal, rep.NewChildren, rep.OldChildren)
	}
}

// writeReceipt prints what clients saw while the operation acted, when
// it was watched.
func writeReceipt(d *deps, r *verify.Receipt) {
	if r == nil {
		return
	}
	health := "no health check"
	if r.HealthChecks > 0 {
		health = fmt.Sprintf("%d of %d health checks failed", r.HealthFailed, r.HealthChecks)
	}
	verified := "the new generation was not verified"
	if r.Verified > 0 {
		verified = fmt.Sprintf("new generation verified %s after the first signal", r.Verified.Round(time.Millisecond))
	}
	d.printf("receipt: %d probes of %v every %s: %d answered, %d refused, %d reset, %d failed; %s; longest gap %s; %s\n",
		r.Probes, r.Listeners, r.Every, r.Answered, r.Refused, r.Reset, r.Failed, health,
		r.LongestGap.Round(time.Millisecond), verified)
}

// writeHooks prints the hooks a restart ran, with their output.
func writeHooks(d *deps, hooks []verify.HookRun) {
	for _, h := range hooks {
		result := "ok"
		if h.Error != "" {
			result = "FAILED: " + h.Error
		}
		d.printf("hook %s (%s): %s in %s\n", h.Phase, h.Command, result, h.Took.Round(time.Millisecond))
		for _, line := range strings.Split(strings.TrimRight(h.Output, "\n"), "\n") {
			if line != "" {
				d.printf("  | %s\n", line)
			}
		}
	}
}

// writeDrain prints how the older generation of a reload ended.
func writeDrain(d *deps, dr *supervise.DrainReport) {
	switch {
	case dr == nil || len(dr.Old) == 0:
	case dr.BoundBy != "--drain-timeout" && dr.Bound > 0:
		d.printf("older generation: %v still finishing their requests; not waited for (%s %s ends them; --drain-timeout bounds them)\n", dr.Old, dr.BoundBy, dr.Bound)
	case dr.BoundBy != "--drain-timeout":
		d.printf("older generation: %v still finishing their requests; not waited for (--drain-timeout bounds them)\n", dr.Old)
	case len(dr.Ended) == 0 && len(dr.Left) == 0:
		d.printf("older generation: %v finished their requests in %s (bound %s, %s)\n", dr.Old, dr.Drained.Round(time.Millisecond), dr.Bound, dr.BoundBy)
	default:
		var ended []string
		for _, s := range dr.Ended {
			if len(s.Sent) > 0 {
				ended = append(ended, fmt.Sprintf("%s to %v", proc.SigName(s.Step.Signal), s.Sent))
			}
		}
		d.printf("older generation: %v outlived its bound of %s (%s): %s; still alive: %v\n", dr.Old, dr.Bound, dr.BoundBy, strings.Join(ended, ", then "), dr.Left)
	}
}

// errLogsHeld reports rotated logs still open when --logs gave up.
var errLogsHeld = errors.New("rotated logs still held open")

// waitLogs waits until no server process holds a rotated error log.
func waitLogs(ctx context.Context, d *deps, p server.Profile, o *serverFlags) error {
	rc, err := server.ReadRunConfig(ctx, p, o.conf)
	if err != nil {
		return err
	}
	logDir := filepath.Dir(rc.ErrorLog)
	held, err := verify.WaitLogsReleased(ctx, proc.DefaultRoot, p.Binary, logDir, o.timeout)
	if err != nil {
		return err
	}
	if len(held) > 0 {
		return fmt.Errorf("%w after %s: %v", errLogsHeld, o.timeout, held)
	}
	d.log.Info().Str("dir", logDir).Msg("rotated logs released: safe to compress or delete")
	return nil
}
