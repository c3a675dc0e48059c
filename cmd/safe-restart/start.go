package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise"
)

func newStartCmd(d *deps) *cobra.Command {
	o := &serverFlags{}
	c := &cobra.Command{
		Use:   "start SERVICE",
		Short: "Start a server on clean ground (no orphans, no leaked IPC, enough headroom) and verify it serves",
		Long: `Start refuses, touching nothing, when the config test fails or the kernel has too
few free semaphore sets (exit 3). Otherwise it stops orphaned workers of dead
masters (they hold the port and the semaphores; event orphans need KILL), reaps
the IPC dead generations left (each with its proof), starts the server, records
which IPC objects the start created, and verifies: a live master in the
pidfile, every listener accepting, the health check passing, and no fatal line
(AH00023, AH00072, AH00144, AH00050, AH00020, libgomp, ...) in the start's
output or the error log. A server already running is left alone (exit 0).

Apache is started with SO_REUSEPORT on its listeners (-C "ListenCoresBucketsRatio
..."; a ratio in your config wins) when its config test passes with it, so that
the next restart can start the new master beside this one; no other socket may
then share its ports.`,
		Example: `  safe-restart start apache2
  safe-restart start apache2 --health-url http://127.0.0.1/healthz --timeout 60s`,
		Args: exactArgs(1, serviceArg),
		RunE: func(c *cobra.Command, args []string) error { return runStart(c.Context(), d, args[0], o) },
	}
	o.register(c, false, true)
	return c
}

func runStart(ctx context.Context, d *deps, service string, o *serverFlags) error {
	p, _, lock, err := o.begin(ctx, d, service)
	if err != nil {
		return err
	}
	defer lock.Release()
	service = p.Name // a service file's name, not its path
	_, startOpts := o.options(d, service, p, nil)
	rep, err := supervise.Start(ctx, startOpts)
	if o.json {
		if jerr := writeJSON(d.stdout, rep); jerr != nil {
			return jerr
		}
	} else if err == nil {
		writeStartSummary(d, service, rep)
	}
	if err != nil && rep.Acted() {
		return &exitError{code: exitFailed, err: err} // it acted: not "refused before acting"
	}
	return err
}

func writeStartSummary(d *deps, service string, rep supervise.StartReport) {
	if rep.AlreadyRunning {
		d.printf("%s is already running (master %d): not started\n", service, rep.Master.PID)
		return
	}
	addrs := make([]string, len(rep.Listeners))
	for i, l := range rep.Listeners {
		addrs[i] = l.Addr
	}
	d.printf("started %s: master %d serving on %v; stopped %d orphaned worker(s), removed %d leaked IPC object(s), the start created %d\n",
		service, rep.Master.PID, addrs, len(rep.Orphans), ipcguard.CountRemoved(rep.Reaped), len(rep.Created))
	if len(rep.Leftovers) > 0 {
		d.printf("removed what a dead master left: %v\n", rep.Leftovers)
	}
}
