package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"golang.org/x/term"

	"github.com/safe-restart/safe-restart/supervise"
)

// deps are what every command shares: output streams and the logger.
type deps struct {
	stdout, stderr io.Writer
	logs           io.Writer // stderr, batched (see batchWriter)
	log            *zerolog.Logger
	logFormat      string
	logLevel       string
}

func newRootCmd(d *deps) *cobra.Command {
	root := &cobra.Command{
		Use:   "safe-restart",
		Short: "Restart web servers without leaving them down or leaking their IPC",
		Long: `safe-restart leaves a service running a verified, healthy new generation, or
leaves the old one untouched and says why: verified reload, stop, start and
restart of Apache (apache2, httpd), nginx, php-fpm (php8.2-fpm, php-fpm8.2,
php-fpm) and any daemon described by a service file (TOML), and the IPC guard
(it inventories SysV and POSIX IPC objects, proves which ones dead server
generations left behind, and removes exactly those).

On a host where systemd is PID 1, start, stop and restart act through the
server's unit, so that systemd always knows the serving master (see
"safe-restart systemd --help").

Logs go to stderr: human lines on a terminal, JSON lines otherwise.
Results go to stdout.

` + exitCodesHelp,
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
	ro.registerTrial(root)
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
	root.AddCommand(newIPCCmd(d), newStartCmd(d), newStopCmd(d), newRestartCmd(d), newStatusCmd(d), newReloadCmd(d), newDoctorCmd(d), newMetricsCmd(d), newRunCmd(d), newSystemdCmd(d))
	return root
}

func (d *deps) setupLogger() error {
	lvl, err := zerolog.ParseLevel(strings.ToLower(d.logLevel))
	if err != nil || d.logLevel == "" {
		return usagef("use debug, info, warn or error", "bad --log-level %q", d.logLevel)
	}
	var w io.Writer
	switch d.logFormat {
	case "json":
		w = d.logs
	case "console":
		w = zerolog.ConsoleWriter{Out: d.logs, TimeFormat: time.TimeOnly}
	case "auto":
		w = d.logs
		if f, ok := d.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			w = zerolog.ConsoleWriter{Out: d.logs, TimeFormat: time.TimeOnly}
		}
	default:
		return usagef("use auto, console or json", "bad --log-format %q", d.logFormat)
	}
	l := zerolog.New(w).Level(lvl).With().Timestamp().Logger()
	d.log = &l
	return nil
}

// logTimeFormat is the timestamp of a JSON log line: RFC 3339 with
// milliseconds, so that events a backoff apart (50 ms) are ordered and
// their spacing can be read from the log.
const logTimeFormat = "2006-01-02T15:04:05.000Z07:00"

func init() { zerolog.TimeFieldFormat = logTimeFormat }

// isCobraUsage reports cobra's own error for an unknown subcommand, the one
// usage error cobra does not let us type (flag errors go through
// SetFlagErrorFunc, argument errors through our Args functions).
func isCobraUsage(err error) bool {
	return strings.HasPrefix(err.Error(), "unknown command ")
}

// exactArgs is cobra.ExactArgs returning a usageError.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("see "+cmd.CommandPath()+" --help", "%s takes %s, got %d argument(s)", cmd.CommandPath(), what, len(args))
		}
		return nil
	}
}

func (d *deps) printf(format string, a ...any) { fmt.Fprintf(d.stdout, format, a...) }
