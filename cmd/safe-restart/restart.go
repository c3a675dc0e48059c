package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/safe-restart/safe-restart/supervise"
)

type restartOptions struct {
	conf        string
	healthURL   string
	timeout     time.Duration
	graceful    time.Duration
	json        bool
	lockTimeout time.Duration
	stateDir    string
}

func newRestartCmd(d *deps) *cobra.Command {
	o := &restartOptions{}
	c := &cobra.Command{
		Use:   "restart SERVICE",
		Short: "Config test, verified stop, IPC reap, verified start",
		Long: `Restart runs the server's config test first: if it fails, the running server is
left untouched and the exit code is 3. Otherwise it stops the server as
'safe-restart stop' does and starts it as 'safe-restart start' does, holding the
service lock throughout, so cron, logrotate and a deploy never interleave.`,
		Example: `  safe-restart restart apache2
  safe-restart restart apache2 --graceful-timeout 10s --health-url http://127.0.0.1/healthz`,
		Args: exactArgs(1, "one service (apache2 or httpd)"),
		RunE: func(c *cobra.Command, args []string) error { return runRestart(c.Context(), d, args[0], o) },
	}
	fl := c.Flags()
	fl.StringVar(&o.conf, "conf", "", "the server's main config file (default: the distribution's)")
	fl.StringVar(&o.healthURL, "health-url", "", "URL whose answer (below 500) proves the server serves (default: GET / on its first listener)")
	fl.DurationVar(&o.timeout, "timeout", 20*time.Second, "how long the server may take to come up and serve")
	fl.DurationVar(&o.graceful, "graceful-timeout", supervise.DefaultGracefulWait, "how long Apache's graceful stop (WINCH) may take before TERM; 0 skips it: TERM first cuts requests in flight, but the graceful stop refuses new connections for at least a second")
	fl.BoolVar(&o.json, "json", false, "print the report as JSON")
	fl.DurationVar(&o.lockTimeout, "lock-timeout", 2*time.Minute, "how long to wait for another safe-restart working on the same service")
	fl.StringVar(&o.stateDir, "state-dir", "/run/safe-restart", "where safe-restart keeps its locks and lineages")
	return c
}

func runRestart(ctx context.Context, d *deps, service string, o *restartOptions) error {
	p, err := supervise.LookupProfile(service)
	if err != nil {
		return err
	}
	lock, err := lockService(ctx, d, o.stateDir, service, o.lockTimeout)
	if err != nil {
		return err
	}
	defer lock.Release()
	log := d.log.With().Str("server", service).Logger()
	lineages := o.stateDir + "/lineage"
	rep, err := supervise.Restart(ctx,
		supervise.StopOptions{Ladder: supervise.ApacheLadder(o.graceful), LineageDir: lineages, IntentDir: o.stateDir, Log: log},
		supervise.StartOptions{Profile: p, Conf: o.conf, HealthURL: o.healthURL, Timeout: o.timeout, LineageDir: lineages, IntentDir: o.stateDir, Log: log})
	if o.json {
		if jerr := writeJSON(d.stdout, rep); jerr != nil {
			return jerr
		}
	} else if err == nil {
		writeStopSummary(d, service, rep.Stop)
		writeStartSummary(d, service, rep.Start)
	}
	if err != nil && rep.Stop.Acted() {
		return &exitError{code: exitFailed, err: err}
	}
	return err
}
