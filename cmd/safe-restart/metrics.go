package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/spf13/cobra"

	"github.com/safe-restart/safe-restart/supervise"
	"github.com/safe-restart/safe-restart/supervise/metrics"
	"github.com/safe-restart/safe-restart/supervise/server"
)

// metricsFlags are the flags of `safe-restart metrics`.
type metricsFlags struct {
	conf, stateDir, serviceDir string
	healthURL, textfile        string
	statusURL                  string
	timeout                    time.Duration
}

func newMetricsCmd(d *deps) *cobra.Command {
	f := &metricsFlags{}
	c := &cobra.Command{
		Use:   "metrics [SERVICE...]",
		Short: "Print Prometheus metrics (IPC usage, orphans, pthread keys, reloads, up, last operation); change nothing",
		Long: `Metrics prints, in the Prometheus text format, what a fleet needs to see
before a server dies: SysV IPC usage against the kernel's limits, IPC objects
and workers that dead generations left behind, the pthread keys the master
uses, how many times it was reloaded, whether it serves (a live master that
serves nothing is down), and the outcome of the last start, stop, restart,
reload or ipc reap of each service (recorded in --state-dir).

With --textfile it writes node_exporter's textfile collector file atomically
(a temporary file in the same directory, then a rename); run it every minute
from cron or a systemd timer and alert when safe_restart_metrics_timestamp_seconds
stops moving. It exits 1 when a service's status could not be read (the file
is still written, with safe_restart_status_success 0 for that service).`,
		Example: `  safe-restart metrics apache2
  safe-restart metrics apache2 --textfile /var/lib/prometheus/node-exporter/safe-restart.prom
  safe-restart metrics                 # host IPC usage and every recorded last operation`,
		RunE: func(c *cobra.Command, args []string) error { return runMetrics(c.Context(), d, args, f) },
	}
	fl := c.Flags()
	fl.StringVar(&f.conf, "conf", "", "the server's main config file (default: the distribution's); with one SERVICE only")
	fl.StringVar(&f.healthURL, "health-url", "", "URL whose answer (below 500) proves the server serves (default: GET / on its first listener); with one SERVICE only")
	fl.StringVar(&f.statusURL, "status-url", "", "the status page that counts the master's reloads (Apache: mod_status, e.g. http://127.0.0.1/server-status?auto; default: the error log and its rotated files); with one SERVICE only")
	fl.DurationVar(&f.timeout, "timeout", 5*time.Second, "how long each listener and the health check may take to answer")
	fl.StringVar(&f.stateDir, "state-dir", string(supervise.DefaultStateDir), "where safe-restart keeps its lineages and last-operation records")
	fl.StringVar(&f.textfile, "textfile", "", "write the metrics to this file atomically (node_exporter's textfile collector reads *.prom) instead of stdout")
	serviceDirFlag(c, &f.serviceDir)
	return c
}

// validate refuses flags that name one server for several, a bad timeout
// and a textfile node_exporter would not read.
func (f *metricsFlags) validate(services []string) error {
	if (f.conf != "" || f.healthURL != "" || f.statusURL != "") && len(services) != 1 {
		return usagef("run metrics once per service with its own --conf, or use the default configs",
			"--conf, --health-url and --status-url describe one server; got %d services", len(services))
	}
	if f.statusURL != "" {
		if err := validStatusURL(f.statusURL); err != nil {
			return err
		}
	}
	if f.timeout <= 0 {
		return usagef("e.g. --timeout 5s", "bad --timeout %s", f.timeout)
	}
	if f.textfile != "" && !strings.HasSuffix(f.textfile, ".prom") {
		return usagef("e.g. --textfile /var/lib/prometheus/node-exporter/safe-restart.prom",
			"bad --textfile %q: node_exporter's textfile collector reads only *.prom files", f.textfile)
	}
	return nil
}

// errMetricsPartial makes metrics exit 1 when some facts could not be read.
var errMetricsPartial = errors.New("some metrics could not be gathered")

func runMetrics(ctx context.Context, d *deps, services []string, f *metricsFlags) error {
	if err := f.validate(services); err != nil {
		return err
	}
	// A name that is no service is a mistake in the command line (a typo
	// in the cron line), not a server whose status cannot be read.
	profiles := make([]server.Profile, len(services))
	for i, name := range services {
		p, err := server.ResolveService(name, f.serviceDir)
		if err != nil {
			return err
		}
		profiles[i] = p
	}
	facts, failures := metrics.Gather(ctx, metrics.Options{Services: profiles, Conf: f.conf,
		HealthURL: f.healthURL, StatusURL: f.statusURL, Timeout: f.timeout, State: supervise.StateDir(f.stateDir), Log: *d.log})
	facts.Build = build().labels()
	reg := prometheus.NewPedanticRegistry()
	facts.Register(reg)
	var err error
	if f.textfile != "" {
		err = writeTextfile(f.textfile, reg)
	} else {
		err = writeExposition(d, reg)
	}
	if err != nil {
		return err
	}
	if failures > 0 {
		return &exitError{code: exitFailed, err: fmt.Errorf("%w: %d failure(s), logged above", errMetricsPartial, failures)}
	}
	return nil
}

// writeExposition prints the metrics in the Prometheus text format.
func writeExposition(d *deps, g prometheus.Gatherer) error {
	mfs, err := g.Gather()
	if err != nil {
		return fmt.Errorf("gather metrics: %w", err)
	}
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(d.stdout, mf); err != nil {
			return fmt.Errorf("write metrics: %w", err)
		}
	}
	return nil
}

// writeTextfile writes the metrics to path atomically: node_exporter
// never reads half a file (client_golang writes a temporary file in the
// same directory, then renames it over path).
func writeTextfile(path string, g prometheus.Gatherer) error {
	if err := prometheus.WriteToTextfile(path, g); err != nil {
		return fmt.Errorf("write textfile %s: %w", filepath.Clean(path), err)
	}
	return nil
}
