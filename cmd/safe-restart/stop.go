package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise"
)

func newStopCmd(d *deps) *cobra.Command {
	o := &serverFlags{}
	c := &cobra.Command{
		Use:   "stop SERVICE",
		Short: "Stop a server and its whole process tree with a verified signal ladder, then reap its leftover IPC",
		Long: `Stop finds the master from the server's pidfile and proves it is the server
(alive, running the server's binary, no younger than the pidfile). It then climbs
the ladder (apache2: WINCH graceful stop, TERM after --graceful-timeout, KILL to
every survivor after 10 s more), moving on only when a member of the tree is
verified still alive. Finally it removes the IPC objects the stopped generation
left behind, each with its proof. A pidfile naming another program is refused
(exit 3) and nothing is signalled.`,
		Example: `  safe-restart stop apache2
  safe-restart stop apache2 --dry-run             # the pids and the ladder, nothing sent
  safe-restart stop apache2 --graceful-timeout 2m --lock-timeout 5m`,
		Args: exactArgs(1, serviceArg),
		RunE: func(c *cobra.Command, args []string) error { return runStop(c.Context(), d, args[0], o) },
	}
	o.register(c, true, false)
	c.Flags().BoolVar(&o.dryRun, "dry-run", false, "print the master, its tree and the ladder; change nothing")
	return c
}

func runStop(ctx context.Context, d *deps, service string, o *serverFlags) error {
	p, ladder, lock, err := o.begin(ctx, d, service)
	if err != nil {
		return err
	}
	defer lock.Release()
	service = p.Name // a service file's name, not its path
	stopOpts, _ := o.options(d, service, p, ladder)
	rep, err := supervise.Stop(ctx, stopOpts)
	if o.json {
		if jerr := writeJSON(d.stdout, rep); jerr != nil {
			return jerr
		}
	} else if err == nil {
		writeStopSummary(d, service, rep)
	}
	if err != nil && rep.Acted() {
		return &exitError{code: exitFailed, err: err} // signals were sent: not "refused before acting"
	}
	return err
}

func writeStopSummary(d *deps, service string, rep supervise.StopReport) {
	switch {
	case rep.Master == nil:
		d.printf("%s was not running\n", service)
	case rep.Planned:
		d.printf("would stop %s: master %d, tree %v\n", service, rep.Master.PID, rep.Tree)
		return
	case len(rep.Steps) > 0 && len(rep.Steps[len(rep.Steps)-1].Survivors) == 0:
		d.printf("stopped %s: master %d and %d more process(es) in %d step(s)\n", service, rep.Master.PID, len(rep.Tree)-1, len(rep.Steps))
	case len(rep.Steps) == 0:
		d.printf("systemd's restart job stopped %s: master %d and %d more process(es), verified gone\n", service, rep.Master.PID, len(rep.Tree)-1)
	}
	if len(rep.Orphans) > 0 {
		d.printf("stopped %d orphaned worker(s) of dead masters: %v\n", len(rep.Orphans), rep.Orphans)
	}
	d.printf("removed %d IPC object(s) the stopped generation left\n", ipcguard.CountRemoved(rep.Reaped))
}
