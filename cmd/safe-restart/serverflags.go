package main

import (
	"context"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise"
	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/server"
)

// serviceArg names what a SERVICE argument may be, for usage errors.
const serviceArg = "one service (apache2, httpd, nginx, php8.2-fpm, or a service file NAME or PATH.toml)"

// serverFlags are the flags of the commands that act on a server.
type serverFlags struct {
	conf, binary, stateDir string
	serviceDir             string
	unit                   string
	lockTimeout            time.Duration
	json                   bool
	// stop
	graceful time.Duration
	ladder   string
	dryRun   bool
	// start
	healthURL string
	timeout   time.Duration
	// cmd is the command the flags belong to, to tell a default from a choice
	cmd *cobra.Command
	// restart
	noHandoff bool
	noOverlap bool
	// reload, restart
	noTrial   bool
	noReceipt bool
	hooks     server.Hooks
}

func (f *serverFlags) register(c *cobra.Command, stops, starts bool) {
	fl := c.Flags()
	f.cmd = c
	fl.StringVar(&f.conf, "conf", "", "the server's main config file (default: the distribution's)")
	fl.StringVar(&f.binary, "binary", "", "the server binary (default: the profile's, e.g. /usr/sbin/apache2)")
	serviceDirFlag(c, &f.serviceDir)
	fl.StringVar(&f.stateDir, "state-dir", string(supervise.DefaultStateDir), "where safe-restart keeps its locks, lineages and stop records")
	fl.DurationVar(&f.lockTimeout, "lock-timeout", 2*time.Minute, "how long to wait for another safe-restart working on the same service")
	fl.BoolVar(&f.json, "json", false, "print the report as JSON")
	unitFlag(c, &f.unit)
	if stops {
		fl.DurationVar(&f.graceful, "graceful-timeout", server.DefaultGracefulWait,
			"how long the graceful stop (Apache WINCH, nginx and php-fpm QUIT) may take before TERM; 0 skips it: TERM first cuts requests in flight (Apache's graceful stop refuses new connections for at least a second). An Apache restart that cannot overlap, and a restart through a systemd unit, skip it unless this flag (or --ladder) is given")
		fl.StringVar(&f.ladder, "ladder", "", "the stop ladder as SIGNAL:WAIT[:all] steps, e.g. WINCH:30s,TERM:10s,KILL:5s:all (overrides --graceful-timeout)")
	}
	if starts {
		fl.StringVar(&f.healthURL, "health-url", "", "URL whose answer (below 500) proves the server serves (default: GET / on its first listener)")
		fl.DurationVar(&f.timeout, "timeout", 20*time.Second, "how long the server may take to come up and serve")
	}
}

// registerActing registers the flags of the commands that replace a
// running generation (reload, restart, safe-restart SERVICE): --no-trial
// and --no-receipt.
func (f *serverFlags) registerActing(c *cobra.Command) {
	c.Flags().BoolVar(&f.noTrial, "no-trial", false,
		"skip the proof that the new configuration can run (Apache: a start in throwaway namespaces; every server: a bind check of new listen addresses) before the running server is touched; "+
			"a change that passes the config test but cannot start (a key that does not match its certificate, a taken port) then takes the server down")
	c.Flags().StringVar(&f.hooks.PreStop, "pre-stop", "",
		"a shell command run before a restart stops the old master when connections will be refused meanwhile (no overlap, no held sockets), e.g. to take the host out of its load balancer; its failure refuses the restart (exit 3). A service file's [hooks] pre_stop is the default")
	c.Flags().StringVar(&f.hooks.PostStart, "post-start", "",
		"a shell command run once that restart's new master is verified (put the host back); its failure is exit 1, the server serving. A service file's [hooks] post_start is the default")
	c.Flags().DurationVar(&f.hooks.Timeout, "hook-timeout", 30*time.Second, "how long each hook may run before it is stopped (TERM) and counts as failed")
	c.Flags().BoolVar(&f.noReceipt, "no-receipt", false,
		"do not probe the listeners while acting: the result then says nothing of what clients saw (by default a new connection to each address the master listens on every 5 ms, plus the health check, from the end of the checks to the end of the operation)")
}

// effectiveHooks are the profile's hooks (a service file's [hooks]) with
// the flags given on the command line instead.
func (f *serverFlags) effectiveHooks(p server.Profile) server.Hooks {
	h := p.Hooks
	changed := func(name string) bool { return f.cmd != nil && f.cmd.Flags().Changed(name) }
	if changed("pre-stop") {
		h.PreStop = f.hooks.PreStop
	}
	if changed("post-start") {
		h.PostStart = f.hooks.PostStart
	}
	if changed("hook-timeout") || h.Timeout == 0 {
		h.Timeout = f.hooks.Timeout
	}
	return h
}

// profile returns the service's profile (built in, or a service file),
// with --binary applied.
func (f *serverFlags) profile(service string) (server.Profile, error) {
	p, err := server.ResolveService(service, f.serviceDir)
	if err != nil || f.binary == "" {
		return p, err
	}
	if err := ipcguard.CheckExe("--binary", f.binary); err != nil {
		return p, specUsage(err)
	}
	p.Binary = f.binary
	return p, nil
}

// unitFlag registers --unit.
func unitFlag(c *cobra.Command, unit *string) {
	c.Flags().StringVar(unit, "unit", "",
		"the systemd unit of the server, when systemd is PID 1 (default: the unit whose control group holds the running master, else the distribution's: apache2.service, httpd.service, nginx.service, phpX.Y-fpm.service, unless --conf names another config)")
}

// serviceDirFlag registers --service-dir.
func serviceDirFlag(c *cobra.Command, dir *string) {
	c.Flags().StringVar(dir, "service-dir", server.DefaultServiceDir,
		"where a SERVICE with no built-in profile is looked up as SERVICE.toml (a service file; SERVICE may also be a path to one)")
}

// stopLadder is --ladder, or the profile's ladder with --graceful-timeout;
// nil when neither flag was given (the operation's default: see
// supervise.StopOptions.Ladder).
func (f *serverFlags) stopLadder(p server.Profile) (proc.Ladder, error) {
	changed := func(name string) bool { return f.cmd != nil && f.cmd.Flags().Changed(name) }
	if f.ladder == "" && !changed("ladder") { // --ladder "" is a bad ladder, not the default
		if !changed("graceful-timeout") {
			return nil, nil
		}
		return p.Ladder(f.graceful), nil
	}
	l, err := proc.ParseLadder(f.ladder)
	if err != nil {
		return nil, usagef("e.g. --ladder WINCH:30s,TERM:10s,KILL:5s:all", "bad --ladder: %v", err)
	}
	return l, nil
}

// validate refuses negative durations, and a hook timeout of 0.
func (f *serverFlags) validate() error {
	if f.cmd != nil && f.cmd.Flags().Changed("hook-timeout") && f.hooks.Timeout == 0 {
		return usagef("give a positive duration, e.g. 30s", "bad --hook-timeout 0")
	}
	for name, d := range map[string]time.Duration{"--lock-timeout": f.lockTimeout, "--graceful-timeout": f.graceful, "--timeout": f.timeout, "--hook-timeout": f.hooks.Timeout} {
		if d < 0 {
			return usagef("give a duration of 0 or more, e.g. 30s", "bad %s %s", name, d)
		}
	}
	return nil
}

// begin checks the flags, resolves the profile and the stop ladder, and
// takes the service lock, which the caller releases.
func (f *serverFlags) begin(ctx context.Context, d *deps, service string) (server.Profile, proc.Ladder, *supervise.Lock, error) {
	p, err := f.profile(service)
	if err != nil {
		return p, nil, nil, err
	}
	if err := f.validate(); err != nil {
		return p, nil, nil, err
	}
	ladder, err := f.stopLadder(p)
	if err != nil {
		return p, nil, nil, err
	}
	// A service file's name, not its path, names the lock.
	lock, err := lockService(ctx, d, f.stateDir, p.Name, f.lockTimeout)
	return p, ladder, lock, err
}

// options are the stop and start options the flags describe.
func (f *serverFlags) options(d *deps, service string, p server.Profile, ladder proc.Ladder) (supervise.StopOptions, supervise.StartOptions) {
	log := d.log.With().Str("server", service).Logger()
	state := supervise.StateDir(f.stateDir)
	return supervise.StopOptions{Profile: p, Conf: f.conf, Ladder: ladder, DryRun: f.dryRun, LineageDir: state.Lineages(), IntentDir: state.Intents(), Unit: f.unit, Log: log},
		supervise.StartOptions{Profile: p, Conf: f.conf, Unit: f.unit, HealthURL: f.healthURL, Timeout: f.timeout, LineageDir: state.Lineages(), IntentDir: state.Intents(), NoHandoff: f.noHandoff, NoOverlap: f.noOverlap, NoTrial: f.noTrial, NoReceipt: f.noReceipt, Hooks: f.effectiveHooks(p), Log: log}
}

// lockService takes the service lock, logging progress while it waits.
func lockService(ctx context.Context, d *deps, stateDir, service string, timeout time.Duration) (*supervise.Lock, error) {
	lockCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return supervise.AcquireLock(lockCtx, supervise.StateDir(stateDir).Locks(), service, func(waited time.Duration) {
		d.log.Info().Str("server", service).Dur("waited", waited).Msg("waiting for another safe-restart on this service")
	})
}

// validStatusURL refuses a --status-url that is not an http(s) URL.
func validStatusURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usagef("e.g. http://127.0.0.1/server-status?auto", "bad --status-url %q: not an http(s) URL", s)
	}
	return nil
}
