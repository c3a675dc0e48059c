package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/safe-restart/safe-restart/supervise"
	"github.com/safe-restart/safe-restart/supervise/doctor"
	"github.com/safe-restart/safe-restart/supervise/server"
)

// doctorOptions are the flags of doctor.
type doctorOptions struct {
	conf, stateDir, serviceDir, root string
	json                             bool
}

func newDoctorCmd(d *deps) *cobra.Command {
	o := &doctorOptions{}
	c := &cobra.Command{
		Use:   "doctor [SERVICE]",
		Short: "Name every known risk present on this machine, with its evidence and its fix; exit 1 if any",
		Long: `Doctor checks, changing nothing but its own samples:
  machine-wide: SysV semaphore usage near the kernel's limits (80% of SEMMNI or
    SEMMNS); crontab lines that reload or restart a web server with no random delay;
  per service: orphaned workers of a dead master; SysV sets leaked by dead
    generations; a stale pidfile; the master's pthread keys (near the limit, their
    growth per reload, their rise while no reload was counted, libgomp mapped); an
    Apache sysvsem mutex owned by a User with uid >= 1000 while logind's
    RemoveIPC=yes; the config's warnings (php-fpm process_control_timeout = 0); a
    php-fpm pool with pm.max_requests = 0 whose workers' memory grows; OOM kills
    counted by the master's memory cgroup; fork() failed, seems busy, segfault,
    SIGKILL and out-of-memory lines in the error log and its first rotation.

Without SERVICE it checks every built-in service installed (apache2, httpd,
nginx, phpX.Y-fpm whose binary and default config exist); a config test that
fails is then a finding. Growth is measured between samples of the same master,
which status, reload and doctor record in --state-dir/samples: run doctor (or
reload through safe-restart) regularly.

Exit codes: 0 no risk found, 1 risks found, 2 usage error, 3 the named
service's config test failed.`,
		Example: `  safe-restart doctor
  safe-restart doctor apache2 --json | jq '.findings[].check'`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef("see "+cmd.CommandPath()+" --help", "%s takes at most one service, got %d arguments", cmd.CommandPath(), len(args))
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error { return runDoctor(c.Context(), d, args, o) },
	}
	fl := c.Flags()
	fl.StringVar(&o.conf, "conf", "", "the service's main config file (default: the distribution's); needs SERVICE")
	fl.StringVar(&o.stateDir, "state-dir", string(supervise.DefaultStateDir), "where safe-restart keeps its lineages and samples")
	fl.StringVar(&o.root, "root", "/", "read logind's and cron's configuration under this directory (a container's or an image's root)")
	fl.BoolVar(&o.json, "json", false, "print the findings as JSON")
	serviceDirFlag(c, &o.serviceDir)
	return c
}

// errRisks makes doctor exit 1 when it found any risk.
var errRisks = errors.New("risks found")

func runDoctor(ctx context.Context, d *deps, args []string, o *doctorOptions) error {
	opts := doctor.Options{StateDir: supervise.StateDir(o.stateDir), Root: o.root}
	switch {
	case len(args) == 1:
		p, err := server.ResolveService(args[0], o.serviceDir)
		if err != nil {
			return err
		}
		opts.Targets = []doctor.Target{{Profile: p, Conf: o.conf}}
	case o.conf != "":
		return usagef("name the service the file configures, e.g. safe-restart doctor apache2 --conf "+o.conf, "--conf needs a SERVICE")
	default:
		opts.All, opts.Targets = true, doctor.BuiltinTargets()
	}
	rep, err := doctor.Run(ctx, opts)
	if err != nil {
		return err
	}
	for _, n := range rep.Notes {
		d.log.Warn().Msg(n)
	}
	if o.json {
		if err := writeJSON(d.stdout, rep); err != nil {
			return err
		}
	} else {
		writeDoctor(d, rep)
	}
	if len(rep.Findings) > 0 {
		return &exitError{code: exitFailed, err: fmt.Errorf("%w: %d", errRisks, len(rep.Findings))}
	}
	return nil
}

// writeDoctor prints one block per finding.
func writeDoctor(d *deps, rep doctor.Report) {
	d.printf("checked: this machine (SysV limits, cron)")
	if len(rep.Services) > 0 {
		d.printf(", %s", strings.Join(rep.Services, ", "))
	}
	d.printf("\n")
	for _, f := range rep.Findings {
		where := "machine"
		if f.Service != "" {
			where = f.Service
		}
		d.printf("\n[%s] %s %s: %s\n", f.Severity, where, f.Check, f.Summary)
		for _, e := range f.Evidence {
			d.printf("  evidence: %s\n", e)
		}
		d.printf("  fix: %s\n", f.Fix)
	}
	if len(rep.Findings) == 0 {
		d.printf("no risks found\n")
		return
	}
	d.printf("\n%d risk(s) found\n", len(rep.Findings))
}
