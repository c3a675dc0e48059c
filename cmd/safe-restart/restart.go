package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/safe-restart/safe-restart/supervise"
)

func newRestartCmd(d *deps) *cobra.Command {
	o := &serverFlags{}
	c := &cobra.Command{
		Use:   "restart SERVICE",
		Short: "Config test, verified stop, IPC reap, verified start",
		Long: `Restart runs the server's config test first: if it fails, the running server is
left untouched and the exit code is 3. Otherwise it stops the server as
'safe-restart stop' does and starts it as 'safe-restart start' does, holding the
service lock throughout, so cron, logrotate and a deploy never interleave.

For nginx and php-fpm the restart refuses no connection: safe-restart takes the
running master's listening sockets (pidfd_getfd, Linux 5.6), holds them through
the stop (the kernel queues new connections) and starts the new master with
them (nginx: NGINX=3;4;, php-fpm: FPM_SOCKETS); a unix socket path the old
master unlinks is linked back at once. When that is impossible it says why and
restarts plainly.`,
		Example: `  safe-restart restart apache2
  safe-restart restart apache2 --graceful-timeout 10s --health-url http://127.0.0.1/healthz`,
		Args: exactArgs(1, serviceArg),
		RunE: func(c *cobra.Command, args []string) error { return runRestart(c.Context(), d, args[0], o) },
	}
	o.register(c, true, true)
	c.Flags().BoolVar(&o.noHandoff, "no-handoff", false,
		"do not hand the listening sockets to the new master (nginx, php-fpm): they close with the old one, and connections are refused until the new one listens")
	return c
}

func runRestart(ctx context.Context, d *deps, service string, o *serverFlags) error {
	p, ladder, lock, err := o.begin(ctx, d, service)
	if err != nil {
		return err
	}
	defer lock.Release()
	service = p.Name // a service file's name, not its path
	stopOpts, startOpts := o.options(d, service, p, ladder)
	rep, err := supervise.Restart(ctx, stopOpts, startOpts)
	if o.json {
		if jerr := writeJSON(d.stdout, rep); jerr != nil {
			return jerr
		}
	} else if err == nil {
		writeStopSummary(d, service, rep.Stop)
		writeStartSummary(d, service, rep.Start)
	}
	if err != nil && (rep.Stop.Acted() || rep.Start.Acted()) {
		return &exitError{code: exitFailed, err: err}
	}
	return err
}
