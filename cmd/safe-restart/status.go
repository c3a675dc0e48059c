package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/safe-restart/safe-restart/supervise"
	"github.com/safe-restart/safe-restart/supervise/generation"
	"github.com/safe-restart/safe-restart/supervise/server"
)

func newStatusCmd(d *deps) *cobra.Command {
	var conf, stateDir, serviceDir, unit string
	var asJSON bool
	c := &cobra.Command{
		Use:   "status SERVICE",
		Short: "Show the server's master, tree, listeners, reloads, IPC verdicts and the risks found; change nothing",
		Example: `  safe-restart status apache2
  safe-restart status apache2 --json | jq .risks`,
		Args: exactArgs(1, serviceArg),
		RunE: func(c *cobra.Command, args []string) error {
			return runStatus(c.Context(), d, args[0], serviceDir, conf, stateDir, unit, asJSON)
		},
	}
	c.Flags().StringVar(&conf, "conf", "", "the server's main config file (default: the distribution's)")
	c.Flags().StringVar(&stateDir, "state-dir", string(supervise.DefaultStateDir), "where safe-restart keeps its locks and lineages")
	c.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	serviceDirFlag(c, &serviceDir)
	unitFlag(c, &unit)
	return c
}

// errNotRunning makes status exit 1 when no master runs.
var errNotRunning = errors.New("not running")

func runStatus(ctx context.Context, d *deps, service, serviceDir, conf, stateDir, unit string, asJSON bool) error {
	p, err := server.ResolveService(service, serviceDir)
	if err != nil {
		return err
	}
	st, err := supervise.ReadStatus(ctx, p, conf, supervise.StateDir(stateDir).Lineages(), unit)
	if err != nil {
		return err
	}
	if _, _, err := st.RecordSample(supervise.StateDir(stateDir).Samples()); err != nil {
		d.log.Warn().Err(err).Msg("cannot record a sample of the master for doctor")
	}
	if asJSON {
		if err := writeJSON(d.stdout, st); err != nil {
			return err
		}
	} else {
		writeStatus(d, st)
	}
	if st.Master == nil {
		return &exitError{code: exitFailed, err: errNotRunning}
	}
	return nil
}

func writeStatus(d *deps, st supervise.Status) {
	if st.Master == nil {
		d.printf("%s: not running (%s)\n", st.Service, st.NotRunning)
	} else {
		addrs := make([]string, len(st.Listeners))
		for i, l := range st.Listeners {
			addrs[i] = l.Addr
		}
		d.printf("%s: running, master %d since %s (up %s), %d process(es), listening on %v, %s of this master, %s\n",
			st.Service, st.Master.PID, st.Master.Start.Format(time.RFC3339), st.Uptime, len(st.Tree), addrs,
			countOr(st.Reloads, "reload(s)", "reloads not counted (the error log does not show them)"),
			countOr(st.PthreadKeys, "pthread keys in use", "pthread keys unreadable"))
	}
	if g := st.Generation; g != nil {
		writeGeneration(d, *g)
	}
	if u := st.Unit; u != nil {
		d.printf("systemd: unit %s %s (%s), MainPID %d, control group %s\n", u.Name, u.Active, u.Sub, u.MainPID, u.CGroup)
	}
	if st.TracksIPC() {
		writeCounts(d.stdout, st.IPC.Count())
		writeUsage(d.stdout, st.IPC.Snapshot)
	}
	if len(st.Risks) == 0 {
		d.printf("risks: none found\n")
		return
	}
	d.printf("risks:\n  - %s\n", strings.Join(st.Risks, "\n  - "))
}

// writeGeneration prints when the serving generation loaded, the
// certificates it serves and the older generation still draining (what
// drifted is among the risks).
func writeGeneration(d *deps, g generation.Report) {
	old := "no older generation runs"
	if len(g.Old) > 0 {
		old = fmt.Sprintf("%d process(es) of the older generation draining since %s", len(g.Old), g.DrainingSince().Format(time.RFC3339))
	}
	d.printf("generation: loaded %s (known from its %s), %s\n", g.Loaded.Format(time.RFC3339), g.LoadedFrom, old)
	for _, o := range g.Old {
		d.printf("  old pid %d, started %s, %s\n", o.PID, o.Started.Format(time.RFC3339), countOr(o.Connections, "open connection(s)", "connections not counted"))
	}
	for _, s := range g.TLS {
		name := ""
		if s.ServerName != "" {
			name = " to " + s.ServerName
		}
		file := "no certificate file of the configuration holds it"
		if s.File != "" {
			file = "as " + s.File + " holds"
		}
		d.printf("tls: %s serves%s %s, valid until %s, %s\n", s.Listener, name, s.Subject, s.NotAfter.Format(time.RFC3339), file)
	}
}

// countOr is "N what", or unknown when n is -1 (not known).
func countOr(n int, what, unknown string) string {
	if n < 0 {
		return unknown
	}
	return fmt.Sprintf("%d %s", n, what)
}
