package main

import (
	"github.com/spf13/cobra"

	"github.com/safe-restart/safe-restart/supervise"
)

// rootLong describes safe-restart: --help follows it with the exit codes,
// the man page with its own sections (man.go).
const rootLong = `safe-restart leaves a service running a verified, healthy new generation, or
leaves the old one untouched and says why: verified reload, stop, start and
restart of Apache (apache2, httpd), nginx, php-fpm (php8.2-fpm, php-fpm8.2,
php-fpm) and any daemon described by a service file (TOML), and the IPC guard
(it inventories SysV and POSIX IPC objects, proves which ones dead server
generations left behind, and removes exactly those).

On a host where systemd is PID 1, start, stop and restart act through the
server's unit, so that systemd always knows the serving master (see
"safe-restart systemd --help").

Logs go to stderr: human lines on a terminal, JSON lines otherwise.
Results go to stdout.`

func newRootCmd(d *deps) *cobra.Command {
	root := &cobra.Command{
		Use:   "safe-restart",
		Short: "Restart web servers without leaving them down or leaking their IPC",
		Long:  rootLong + "\n\n" + exitCodesHelp(),
		Example: `  # the safe default: a verified reload, falling back to a verified restart
  safe-restart apache2

  # replace kill -9 / apachectl restart in deploy scripts
  safe-restart restart apache2

  # after kill -9: stop the orphaned workers, reap, start, verify
  safe-restart start nginx

  # which IPC objects dead Apache generations left behind, and why
  safe-restart ipc ls --service apache2 --proof

  # the removal plan, then the removal
  safe-restart ipc reap --service apache2
  safe-restart ipc reap --service apache2 --yes`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := d.setupLogger(); err != nil {
				return err
			}
			if f := cmd.Flags().Lookup("state-dir"); f != nil {
				return supervise.CheckStateDir(f.Value.String())
			}
			return nil
		},
	}
	root.PersistentFlags().StringVar(&d.logFormat, "log-format", "auto", "log format: auto (console on a terminal, else json), console, json")
	root.PersistentFlags().StringVar(&d.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	// safe-restart SERVICE: the safe default, a verified reload falling back
	// to a verified restart.
	ro, rr := &serverFlags{}, &reloadFlags{}
	ro.register(root, true, true)
	ro.registerActing(root)
	rr.register(root)
	root.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) > 1 {
			return usagef("see safe-restart --help", "unknown command %q", args[0])
		}
		return nil
	}
	root.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cmd.Help()
		}
		return runReload(cmd.Context(), d, args[0], ro, rr)
	}
	root.Use = "safe-restart [SERVICE]"
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &usageError{err: err, hint: "see " + cmd.CommandPath() + " --help"}
	})
	root.AddCommand(newIPCCmd(d), newStartCmd(d), newStopCmd(d), newRestartCmd(d), newStatusCmd(d), newReloadCmd(d), newDoctorCmd(d), newMetricsCmd(d), newRunCmd(d), newSystemdCmd(d), newVersionCmd(d))
	root.AddCommand(newManCmd(root))
	root.Version = build().Version
	root.SetVersionTemplate(build().String())
	return root
}
