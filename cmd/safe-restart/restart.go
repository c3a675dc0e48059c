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
left untouched and the exit code is 3. For Apache it then proves that the new
configuration can run, which its config test cannot: a trial start in throwaway
namespaces (a key that does not match its certificate, a module failing at
start), and a bind check here of every new listen address (a port another
process holds); a failure is exit 3 with the server's own words, nothing
touched (--no-trial skips it). Otherwise it stops the server as
'safe-restart stop' does and starts it as 'safe-restart start' does, holding the
service lock throughout, so cron, logrotate and a deploy never interleave.

For nginx and php-fpm the restart refuses no connection: safe-restart takes the
running master's listening sockets (pidfd_getfd, Linux 5.6) and starts the new
master with them (nginx: NGINX=3;4;, php-fpm: FPM_SOCKETS) beside the old one,
as nginx's own binary upgrade does; once the new master is verified the old one
stops gracefully, both generations having accepted from the same sockets in
between. A unix socket path the old master would unlink is kept by a bind mount
(or linked back at once). --no-overlap stops the old master first (the held
sockets queue new connections until the new one accepts: no refusal, but the
clients wait for the start). When the handoff is impossible it says why and
restarts plainly (--no-handoff forces it).

Apache is replaced without refusing a connection, whoever started it: the new
master starts beside the running one on the same ports (SO_REUSEPORT, set on the
old master's sockets and given to the new one with -C "ListenCoresBucketsRatio
..."), is verified, then every new connection is steered to it (a reuseport
program), the old sockets drain, and the old master stops gracefully. On a
systemd host the new master starts in the unit, which follows it (nginx's there
is its own binary upgrade, USR2: the old master starts it). Otherwise
(too little memory or too few semaphore sets for two generations, --no-overlap)
it stops then starts, and says why; that stop skips Apache's graceful stop (TERM
first, as apache2 -k stop) unless --graceful-timeout or --ladder asks for it,
since no master accepts until the new one listens.

While it acts on a running master, it probes every listener every 5 ms and
prints a receipt of what clients saw (answered, refused, reset, failed, the
longest gap; --no-receipt turns it off).`,
		Example: `  safe-restart restart apache2
  safe-restart restart apache2 --graceful-timeout 10s --health-url http://127.0.0.1/healthz
  safe-restart restart nginx --json            # handoff and overlap in the report
  safe-restart restart php8.2-fpm --no-overlap # never two pools at once (memory)`,
		Args: exactArgs(1, serviceArg),
		RunE: func(c *cobra.Command, args []string) error { return runRestart(c.Context(), d, args[0], o) },
	}
	o.register(c, true, true)
	o.registerActing(c)
	c.Flags().BoolVar(&o.noHandoff, "no-handoff", false,
		"do not hand the listening sockets to the new master (nginx, php-fpm): they close with the old one, and connections are refused until the new one listens")
	c.Flags().BoolVar(&o.noOverlap, "no-overlap", false,
		"stop the old master before starting the new one: two generations never run at once (memory), but the clients wait for the start")
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
	d.receipt = rep.Receipt
	if o.json {
		if jerr := writeJSON(d.stdout, rep); jerr != nil {
			return jerr
		}
	} else {
		if err == nil {
			writeStopSummary(d, service, rep.Stop)
			writeStartSummary(d, service, rep.Start)
			writeOverlapSummary(d, rep)
		}
		writeHooks(d, rep.Hooks)
		writeReceipt(d, rep.Receipt)
	}
	if err != nil && rep.Acted() {
		return &exitError{code: exitFailed, err: err}
	}
	return err
}

// writeOverlapSummary says whether the new master started beside the old
// one, or why not.
func writeOverlapSummary(d *deps, rep supervise.RestartReport) {
	switch {
	case rep.Overlap:
		d.printf("the new master started beside the old one, which stopped only then: no moment without a listener\n")
	case rep.OverlapSkipped != "":
		d.printf("stopped, then started (no overlap): %s\n", rep.OverlapSkipped)
	}
}
