package supervise

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"os"
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
	// the server (see FindUnit); "" when none is known.
	Unit string

	kind kind
}

// profiles are the built-in profiles, by name.
var profiles = map[string]Profile{
	"apache2": {Name: "apache2", Kind: "apache", Binary: "/usr/sbin/apache2", Conf: "/etc/apache2/apache2.conf", Ctl: "/usr/sbin/apache2ctl",
		EnvVars: "/etc/apache2/envvars", Unit: "apache2.service", kind: apacheKind{}},
	"httpd": {Name: "httpd", Kind: "apache", Binary: "/usr/sbin/httpd", Conf: "/etc/httpd/conf/httpd.conf", Unit: "httpd.service", kind: apacheKind{}},
}

// profileFinders resolve names that no fixed entry has (php-fpm's
// versioned binaries); each returns ok false when name is not its, and an
// error when it is but cannot be resolved (an ambiguous name).
var profileFinders []func(name string) (p Profile, ok bool, err error)

// LookupProfile returns the built-in profile called name.
func LookupProfile(name string) (Profile, error) {
	if p, ok := profiles[name]; ok {
		return p, nil
	}
	for _, find := range profileFinders {
		if p, ok, err := find(name); ok || err != nil {
			return p, err
		}
	}
	names := make([]string, 0, len(profiles))
	for n := range profiles {
		names = append(names, n)
	}
	slices.Sort(names)
	return Profile{}, fmt.Errorf("%w %q (known: %s, php-fpm, phpX.Y-fpm, php-fpmX.Y, or a service file: PATH.toml or NAME in --service-dir)", ErrUnknownService, name, strings.Join(names, ", "))
}

// Ladder is the profile's stop ladder, with graceful bounding its graceful
// step (0: none).
func (p Profile) Ladder(graceful time.Duration) proc.Ladder { return p.kind.ladder(graceful) }

// ReloadSignal is the signal that reloads the server in place.
func (p Profile) ReloadSignal(hard bool) syscall.Signal { return p.kind.reloadSignal(hard) }

// ReadRunConfig runs the server's config test against conf ("" means the
// profile's) and reports what the server will use. A failing test returns
// a *ConfigTestError.
// A configuration that keeps the server in the foreground is refused
// (ErrUnsupportedConfig): these commands manage a daemon.
func ReadRunConfig(ctx context.Context, p Profile, conf string) (RunConfig, error) {
	rc, err := p.kind.runConfig(ctx, p, cmp.Or(conf, p.Conf))
	if err != nil {
		return RunConfig{}, err
	}
	rc.Conf = cmp.Or(conf, p.Conf)
	if err := rc.refuseForeground(); err != nil {
		return RunConfig{}, err
	}
	return rc, nil
}

// fatalLines returns the lines of text that report a fatal error.
func (p Profile) fatalLines(text string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if p.kind.fatal(line) {
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

// prepare runs the config test and returns the IPC signature (nil for a
// server that creates no IPC) and run config, logging the config's
// warnings.
func (p Profile) prepare(ctx context.Context, conf string, log zerolog.Logger) (*ipcguard.Signature, RunConfig, error) {
	return p.prepareFor(ctx, conf, false, log)
}

// prepareFor is prepare; foreground accepts a configuration that keeps
// the server in the foreground (safe-restart run supervises it).
func (p Profile) prepareFor(ctx context.Context, conf string, foreground bool, log zerolog.Logger) (*ipcguard.Signature, RunConfig, error) {
	rc, err := p.kind.runConfig(ctx, p, cmp.Or(conf, p.Conf))
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
	return p.kind.signature(p, rc), rc, nil
}

// Installed returns the built-in profiles installed here: those whose
// binary and default config file exist (apache2, httpd, nginx, and each
// php-fpm version as phpX.Y-fpm), sorted by name.
func Installed() []Profile {
	var out []Profile
	add := func(p Profile) {
		if fileExists(p.Binary) && fileExists(p.Conf) {
			out = append(out, p)
		}
	}
	for _, p := range profiles {
		add(p)
	}
	if bins, err := installedFPM(); err == nil {
		for _, b := range bins {
			v := strings.TrimPrefix(b[strings.LastIndex(b, "/")+1:], "php-fpm")
			name := "php-fpm"
			if v != "" {
				name = "php" + v + "-fpm"
			}
			add(fpmProfile(name, v))
		}
	}
	slices.SortFunc(out, func(a, b Profile) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Reexecs reports whether a reload replaces the master process with a new
// one (php-fpm's re-exec), so that per-master counts restart with it.
func (p Profile) Reexecs() bool { return p.kind.reexecs() }
