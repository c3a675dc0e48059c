package server

import (
	"bytes"
	"cmp"
	"context"
	"os"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
)

// Profile is what safe-restart knows about one kind of server.
type Profile struct {
	Name   string // service name, e.g. "apache2"
	Kind   string // "apache", "nginx", "php-fpm", or "service" (a service file)
	Binary string // the server executable, e.g. /usr/sbin/apache2
	Conf   string // default main config file
	// Ctl, when set, runs the server's commands instead of Binary (Debian's
	// apache2ctl sources /etc/apache2/envvars and creates the run dirs).
	Ctl string
	// EnvVars, when set, is a shell file sourced before starting Binary
	// directly (Debian's apache2ctl start defers to systemctl when PID 1 is
	// systemd, which would start a different instance).
	EnvVars string
	// HealthURL, when set, is the health check used when the caller gives
	// none (a service file's health.url).
	HealthURL string
	// Unit is the systemd service the distribution's package installs for
	// the server (see systemd.FindUnit); "" when none is known.
	Unit string
	// Hooks are the commands a restart runs around a gap it cannot avoid
	// (a service file's [hooks]; the flags override them).
	Hooks Hooks

	Driver Driver
}

// Hooks are shell commands (sh -c) run on the full-restart path when
// connections will be refused (no overlap, no held sockets): PreStop before
// the old master stops (take the host out of its load balancer), PostStart
// once the new master is verified (put it back); each bounded by Timeout.
type Hooks struct {
	PreStop   string        `json:"pre_stop,omitempty"`
	PostStart string        `json:"post_start,omitempty"`
	Timeout   time.Duration `json:"timeout,omitempty"`
}

// Ladder is the profile's stop ladder, with graceful bounding its graceful
// step (0: none).
func (p Profile) Ladder(graceful time.Duration) proc.Ladder { return p.Driver.Ladder(graceful) }

// ReloadSignal is the signal that reloads the server in place.
func (p Profile) ReloadSignal(hard bool) syscall.Signal { return p.Driver.ReloadSignal(hard) }

// ReadRunConfig runs the server's config test against conf ("" means the
// profile's) and reports what the server will use. A failing test returns
// a *ConfigTestError.
// A configuration that keeps the server in the foreground is refused
// (ErrUnsupportedConfig): these commands manage a daemon.
func ReadRunConfig(ctx context.Context, p Profile, conf string) (RunConfig, error) {
	rc, err := p.Driver.RunConfig(ctx, p, cmp.Or(conf, p.Conf))
	if err != nil {
		return RunConfig{}, err
	}
	rc.Conf = cmp.Or(conf, p.Conf)
	if err := rc.refuseForeground(); err != nil {
		return RunConfig{}, err
	}
	return rc, nil
}

// FatalLines returns the lines of text that report a fatal error.
func (p Profile) FatalLines(text string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if p.Driver.Fatal(line) {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return out
}

// configTest runs argv (with env added), the server's own config test, and
// returns its stdout and stderr and how long it took. A failure is a
// *ConfigTestError.
func configTest(ctx context.Context, server string, argv, env []string) (stdout, stderr string, elapsed time.Duration, err error) {
	cmd := proc.Command(ctx, argv)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	err = cmd.Run()
	elapsed = time.Since(start)
	if err != nil {
		return out.String(), errOut.String(), elapsed, &ConfigTestError{Server: server, Argv: argv, Output: out.String() + errOut.String(), Err: err}
	}
	return out.String(), errOut.String(), elapsed, nil
}

// Prepare runs the config test and returns the IPC signature (nil for a
// server that creates no IPC) and run config, logging the config's
// warnings.
func (p Profile) Prepare(ctx context.Context, conf string, log zerolog.Logger) (*ipcguard.Signature, RunConfig, error) {
	return p.PrepareFor(ctx, conf, false, log)
}

// PrepareFor is prepare; foreground accepts a configuration that keeps
// the server in the foreground (safe-restart run supervises it).
func (p Profile) PrepareFor(ctx context.Context, conf string, foreground bool, log zerolog.Logger) (*ipcguard.Signature, RunConfig, error) {
	rc, err := p.Driver.RunConfig(ctx, p, cmp.Or(conf, p.Conf))
	rc.Conf = cmp.Or(conf, p.Conf)
	if err == nil && !foreground {
		err = rc.refuseForeground()
	}
	if err != nil {
		return nil, RunConfig{}, err
	}
	for _, w := range rc.Warnings {
		log.Warn().Str("server", p.Name).Msg(w)
	}
	return p.Driver.Signature(p, rc), rc, nil
}

// Reexecs reports whether a reload replaces the master process with a new
// one (php-fpm's re-exec), so that per-master counts restart with it.
func (p Profile) Reexecs() bool { return p.Driver.Reexecs() }

// CauseLines returns the lines of text that say why a start failed: the
// kind's fatal lines and every line of error severity, in order, without
// lines about a client's request; when there are none, the last lines.
func (p Profile) CauseLines(text string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.Contains(line, "[client ") {
			continue
		}
		if p.Driver.Fatal(line) || severeLine.MatchString(line) || (len(out) > 0 && strings.HasSuffix(out[len(out)-1], ":")) {
			out = append(out, line) // a line ending in ":" goes on in the next (AH00526: Syntax error on line N of F:)
		}
	}
	if len(out) == 0 {
		return LastLines(text, 5)
	}
	// The lines that ended the start first (AH02565 before AH00016).
	slices.SortStableFunc(out, func(a, b string) int { return cmp.Compare(rank(p, a), rank(p, b)) })
	return slices.Compact(out)
}

// HaltsStart reports whether text has a line that ends a start: fatal by
// the kind's judgement (AH00016, AH00072, ...), or of emerg, alert or crit
// severity (mod_ssl's AH02565 is emerg). Lines of error severity do not:
// a server may start after one (mod_ssl's OCSP stapling errors).
func (p Profile) HaltsStart(text string) bool {
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if !strings.Contains(l, "[client ") && (p.Driver.Fatal(l) || haltLine.MatchString(l)) {
			return true
		}
	}
	return false
}

// ExitsCleanOn reports whether systemd counts the master's exit on sig as
// clean: SIGTERM, SIGINT, SIGHUP and SIGPIPE (systemd's clean signals for
// daemons), and a built-in server's graceful stop signal (Apache WINCH,
// nginx and php-fpm QUIT), on which the master exits 0. A service file's
// daemon may not handle its signals: only the four count.
func (p Profile) ExitsCleanOn(sig syscall.Signal) bool {
	switch sig {
	case syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGPIPE:
		return true
	}
	return p.Kind != "service" && p.Driver != nil && sig == p.Ladder(time.Second)[0].Signal
}

// severeLine matches the lines in which a server states an error, as its
// error log or starter writes them (anchored: an access log's line, or a
// request's text, never matches): Apache's "[time] [module:error]" and
// its bare stderr lines ("AH00016: Configuration Failed", "(98)Address
// already in use: ..."), nginx's "TIME [error]" and "nginx: [emerg]",
// php-fpm's "[time] ERROR: ".
var severeLine = regexp.MustCompile(`^\[[^\]]*\] \[[a-z_0-9]*:(emerg|alert|crit|error)\]|` +
	`^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d |nginx: )\[(emerg|alert|crit|error)\]|^(\[[^\]]*\] )?(ERROR|ALERT|EMERG|CRIT): |^AH\d{5}: |^\(\d+\)\w`)

// rank orders cause lines: emerg, alert and crit first, then the kind's
// fatal lines, then the rest.
func rank(p Profile, line string) int {
	switch {
	case haltLine.MatchString(line):
		return 0
	case p.Driver.Fatal(line):
		return 1
	}
	return 2
}

// haltLine matches error log lines of emerg, alert or crit severity
// (Apache's "[time] [module:emerg]", nginx's "TIME [emerg]"), anchored as
// severeLine is.
var haltLine = regexp.MustCompile(`^\[[^\]]*\] \[[a-z_0-9]*:(emerg|alert|crit)\]|` +
	`^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d |nginx: )\[(emerg|alert|crit)\]`)

func LastLines(text string, n int) []string {
	lines := bytes.Split(bytes.TrimSpace([]byte(text)), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = string(l)
	}
	return out
}

// profileFinders resolve names that no fixed entry has (php-fpm's
// versioned binaries); each returns ok false when name is not its, and an
// error when it is but cannot be resolved (an ambiguous name).
var profileFinders []func(name string) (p Profile, ok bool, err error)
