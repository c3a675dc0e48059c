package main

import (
	"context"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/safe-restart/safe-restart/supervise/server"
	"github.com/safe-restart/safe-restart/supervise/systemd"
)

func newSystemdCmd(d *deps) *cobra.Command {
	c := &cobra.Command{
		Use:   "systemd",
		Short: "Make systemctl reload of a server's unit a verified safe-restart reload",
		Long: `On a host where systemd is PID 1, safe-restart needs no set-up: run directly
(safe-restart SERVICE, restart, start, stop), it finds the server's unit and
starts and stops the server through the unit's own jobs, so that the unit
stays active exactly when the server serves, with the serving master as its
MainPID and every process in its control group.

What it cannot change by itself is what other programs run: Debian's own
logrotate configuration, certbot's renewal hooks and invoke-rc.d call
systemctl reload, which runs the unit's ExecReload= (apachectl graceful,
nginx -s reload, kill -USR2): unverified, exit 0 even when the server died.
"safe-restart systemd install SERVICE" writes a drop-in that makes that
command a verified safe-restart reload.`,
	}
	c.AddCommand(newSystemdInstallCmd(d))
	return c
}

// systemdInstallFlags are the flags of systemd install.
type systemdInstallFlags struct {
	conf, unit, exec, serviceDir string
	runtime, dryRun, json        bool
}

func newSystemdInstallCmd(d *deps) *cobra.Command {
	f := &systemdInstallFlags{}
	c := &cobra.Command{
		Use:   "install SERVICE [-- RELOAD-FLAGS...]",
		Short: "Write the drop-in that makes systemctl reload SERVICE's unit a verified safe-restart reload",
		Long: `Install writes /etc/systemd/system/UNIT.d/safe-restart.conf (with --runtime,
/run/systemd/system/UNIT.d/safe-restart.conf, gone at the next boot) and runs
systemctl daemon-reload. The drop-in replaces the unit's ExecReload= with
"safe-restart reload SERVICE", accepts its exit 4 (recovered) as success,
gives it time for a recovery (TimeoutStartSec=3min), and sets PIDFile= to the
server's pidfile (Debian's apache2.service and php-fpm's units have none) so
that systemd follows a master that the reload had to replace. Every line is commented in the file itself.
Flags after -- are added to that reload (--max-reloads 500, --health-url ...).

The config test runs first; the unit must be loaded. --dry-run prints the
drop-in and where it would go, and changes nothing. Remove the file and run
systemctl daemon-reload to undo it.`,
		Example: `  safe-restart systemd install apache2 --dry-run
  safe-restart systemd install apache2 -- --max-reloads 500
  safe-restart systemd install php8.2-fpm --runtime`,
		Args: func(c *cobra.Command, args []string) error {
			if c.ArgsLenAtDash() > 1 || (c.ArgsLenAtDash() < 0 && len(args) != 1) || len(args) == 0 {
				return usagef("e.g. safe-restart systemd install apache2", "want %s, then optional reload flags after --", serviceArg)
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			return runSystemdInstall(c.Context(), d, args[0], args[1:], f)
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.conf, "conf", "", "the server's main config file (default: the distribution's)")
	unitFlag(c, &f.unit)
	fl.StringVar(&f.exec, "exec", "", "the safe-restart that ExecReload= runs (default: this one)")
	fl.BoolVar(&f.runtime, "runtime", false, "write to /run/systemd/system: the drop-in lasts until the next boot")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print the drop-in and its path; write nothing")
	fl.BoolVar(&f.json, "json", false, "print the report as JSON")
	serviceDirFlag(c, &f.serviceDir)
	return c
}

func runSystemdInstall(ctx context.Context, d *deps, service string, reloadArgs []string, f *systemdInstallFlags) error {
	p, err := server.ResolveService(service, f.serviceDir)
	if err != nil {
		return err
	}
	exe := f.exec
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			return err
		}
	}
	if !filepath.IsAbs(exe) {
		return usagef("e.g. --exec /usr/bin/safe-restart", "--exec %q is not an absolute path", exe)
	}
	dir := "/etc/systemd/system"
	if f.runtime {
		dir = "/run/systemd/system"
	}
	rep, err := systemd.InstallDropIn(ctx, systemd.DropInOptions{Profile: p, Conf: f.conf, Unit: f.unit, Exec: exe,
		ReloadArgs: reloadArgs, Dir: dir, DryRun: f.dryRun, Log: d.log.With().Str("server", p.Name).Logger()})
	switch {
	case f.json && rep.Path != "":
		if jerr := writeJSON(d.stdout, rep); jerr != nil {
			return jerr
		}
	case f.dryRun && err == nil:
		d.printf("# %s (not written: --dry-run)\n%s", rep.Path, rep.Text)
	case err == nil:
		d.printf("wrote %s; systemctl reload %s now runs a verified safe-restart reload\n", rep.Path, rep.Unit)
	}
	if err != nil && rep.Written {
		return &exitError{code: exitFailed, err: err}
	}
	return err
}
