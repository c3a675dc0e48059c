package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/sock"
)

// FPMLadder is php-fpm's stop ladder: QUIT asks for a graceful stop (the
// master QUITs its workers, which finish their request, and TERMs them
// after process_control_timeout) for graceful, then TERM (workers TERMed,
// KILLed by the master after 1 s) for 10 s, then KILL to every survivor.
func FPMLadder(graceful time.Duration) proc.Ladder {
	return proc.GracefulLadder(syscall.SIGQUIT, graceful)
}

// fpmKind is php-fpm (php-fpmX.Y on Debian). USR2 reloads it by
// re-executing the master (execvp of its own argv, listening sockets
// inherited through FPM_SOCKETS); a daemonized master forks again after
// the exec, so its pid changes. It creates no SysV IPC (REFERENCE.md §5).
type fpmKind struct{}

// RunConfig runs `php-fpm -tt -y CONF`, the config test that also dumps
// the parsed configuration. php-fpm writes the dump at level notice: with
// a log_level above notice the dump is read from a second run against a
// wrapper that includes the config and sets log_level = notice, and the
// run config says the log holds no notices (RunConfig.QuietLog).
func (fpmKind) RunConfig(ctx context.Context, p Profile, conf string) (RunConfig, error) {
	argv := []string{p.Binary, "-tt", "-y", conf}
	stdout, stderr, elapsed, err := configTest(ctx, p.Name, argv, nil)
	if err != nil {
		return RunConfig{}, err
	}
	d, ok := parseFPMDump(stdout + stderr)
	quiet := !ok
	if quiet {
		if d, err = fpmDumpAtNotice(ctx, p, conf); err != nil {
			return RunConfig{}, err
		}
	}
	rc, err := d.runConfig()
	if err != nil {
		return rc, &ConfigTestError{Server: p.Name, Argv: argv, Err: err}
	}
	if quiet {
		rc.QuietLog = true
		rc.Warnings = append(rc.Warnings, "php-fpm log_level is above notice: the error log does not show a reload's new master; "+
			"a reload is verified through the pidfile and the listeners alone")
	}
	rc.Elapsed, rc.Files = elapsed, fpmFiles(conf)
	return rc, nil
}

// fpmFiles returns conf and the files its include lines name (globs
// expanded, sorted as php-fpm reads them; a relative pattern against
// conf's directory), then PHP's own php.ini and conf.d/*.ini beside conf
// when they exist there (Debian's layout, /etc/php/X.Y/fpm, which is the
// binary's compiled-in configuration path). php-fpm's dump does not list
// them; a file that cannot be read lists only itself.
func fpmFiles(conf string) []string {
	return append(fpmIncluded(conf), phpINIs(filepath.Dir(conf))...)
}

// phpINIs returns dir/php.ini and dir/conf.d/*.ini (sorted), none when
// dir holds no php.ini.
func phpINIs(dir string) []string {
	if _, err := os.Stat(filepath.Join(dir, "php.ini")); err != nil {
		return nil
	}
	ini, _ := filepath.Glob(filepath.Join(dir, "conf.d", "*.ini"))
	return append([]string{filepath.Join(dir, "php.ini")}, ini...)
}

// fpmIncluded returns conf and the files its include lines name.
func fpmIncluded(conf string) []string {
	out := []string{conf}
	text, err := os.ReadFile(conf)
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(text), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(k) != "include" {
			continue
		}
		pattern := strings.Trim(strings.TrimSpace(v), `"'`)
		if !filepath.IsAbs(pattern) {
			pattern = filepath.Join(filepath.Dir(conf), pattern)
		}
		matches, _ := filepath.Glob(pattern)
		for _, m := range matches {
			out = appendNew(out, m)
		}
	}
	return out
}

// fpmDumpAtNotice dumps conf through a temporary wrapper that includes it
// and then sets log_level = notice (a later value wins).
func fpmDumpAtNotice(ctx context.Context, p Profile, conf string) (fpmDump, error) {
	abs, err := filepath.Abs(conf)
	if err != nil {
		return fpmDump{}, err
	}
	f, err := os.CreateTemp("", "safe-restart-fpm-*.conf")
	if err != nil {
		return fpmDump{}, fmt.Errorf("php-fpm config dump: %w", err)
	}
	defer os.Remove(f.Name())
	_, err = fmt.Fprintf(f, "[global]\ninclude = %s\n[global]\nlog_level = notice\n", abs)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fpmDump{}, fmt.Errorf("php-fpm config dump: %w", err)
	}
	stdout, stderr, _, err := configTest(ctx, p.Name, []string{p.Binary, "-tt", "-y", f.Name()}, nil)
	if err != nil {
		return fpmDump{}, err
	}
	d, ok := parseFPMDump(stdout + stderr)
	if !ok {
		return d, &ConfigTestError{Server: p.Name, Argv: []string{p.Binary, "-tt", "-y", conf}, Output: stderr,
			Err: errors.New("php-fpm -tt printed no configuration dump")}
	}
	return d, nil
}

// StartArgv is `php-fpm --daemonize -y CONF`: it forks the master, waits
// until it is ready (pidfile written) and exits. --daemonize overrides a
// daemonize = no meant for systemd, which would keep the starter in the
// foreground (a warning says so).
func (fpmKind) StartArgv(p Profile, conf string) []string {
	return []string{p.Binary, "--daemonize", "-y", conf}
}

func (fpmKind) Ladder(graceful time.Duration) proc.Ladder { return FPMLadder(graceful) }

// ReloadSignal is USR2 either way: php-fpm has one reload, graceful up to
// process_control_timeout.
func (fpmKind) ReloadSignal(bool) syscall.Signal { return syscall.SIGUSR2 }

func (fpmKind) Signature(Profile, RunConfig) *ipcguard.Signature { return nil }

// fpmFatal are the messages (at level ERROR or ALERT, after an optional
// "[pool NAME] ") that mean a start or re-exec failed or the workers
// cannot be forked: every failure of php-fpm's initialization ends with
// "FPM initialization failed" (a bad config, a port taken), and a reload
// whose execvp failed logs "failed to reload".
var fpmFatal = []string{
	"FPM initialization failed",
	"Another FPM instance seems to already listen on ",
	"unable to bind listening socket for address ",
	"fork() failed",
	"failed to reload",
}

// fpmLevel matches the level of a php-fpm log line: "[date] ERROR: " in a
// file, "[ERROR] " on stderr with error_log = syslog.
var fpmLevel = regexp.MustCompile(`^(?:\[[^]]*\] (ERROR|ALERT): |\[(ERROR|ALERT)\] )(?:\[pool [^]]*\] )?`)

// Fatal matches only a line's own message: a worker's output
// (catch_workers_output) is logged as a WARNING or NOTICE and never counts.
func (fpmKind) Fatal(line string) bool {
	m := fpmLevel.FindStringIndex(strings.TrimSpace(line))
	if m == nil {
		return false
	}
	msg := strings.TrimSpace(line)[m[1]:]
	for _, f := range fpmFatal {
		if strings.HasPrefix(msg, f) {
			return true
		}
	}
	return false
}

// Notices php-fpm writes on a reload (fpm_pctl.c, fpm.c).
const (
	fpmReloading = "NOTICE: Reloading in progress"
	fpmRunning   = "NOTICE: fpm is running, pid "
	fpmReady     = "NOTICE: ready to handle connections"
)

// Reloaded returns the new master's pid once the log since the signal
// shows the reload, then "fpm is running, pid N" and "ready to handle
// connections" after it: N is the master that execvp'd and, if
// daemonized, forked (a new pid).
func (fpmKind) Reloaded(logged string, _ ipcguard.Proc) (int, error) {
	pid, reloading := 0, false
	for _, line := range strings.Split(logged, "\n") {
		switch {
		case strings.Contains(line, fpmReloading):
			reloading, pid = true, 0
		case reloading && strings.Contains(line, fpmRunning):
			_, n, _ := strings.Cut(line, fpmRunning)
			pid, _ = strconv.Atoi(strings.TrimSpace(n))
		case pid > 0 && strings.Contains(line, fpmReady):
			return pid, nil
		}
	}
	return 0, nil
}

func (fpmKind) Reexecs() bool    { return true }
func (fpmKind) SpeaksHTTP() bool { return false }

// AcceptProbe is the first byte of a FastCGI record (FCGI_VERSION_1): the
// worker that takes the connection waits for the rest of the header.
func (fpmKind) AcceptProbe() []byte { return []byte{1} }

// ReloadsLogged counts the reloads since the start of master's lineage: a
// re-exec logs "Reloading in progress" and then "fpm is running, pid N" of
// the new master, a fresh start logs "fpm is running" alone and begins a
// new lineage. The last "fpm is running" must name master, else the log
// does not describe it (-1). A re-exec begins from a fresh process image,
// so the count is informative; nothing leaks across php-fpm reloads the
// way it does in Apache's master.
func (fpmKind) ReloadsLogged(log string, master ipcguard.Proc) int {
	n, last, reloading := 0, 0, false
	for _, line := range strings.Split(log, "\n") {
		switch {
		case strings.Contains(line, fpmReloading):
			reloading = true
		case strings.Contains(line, fpmFatal[0]):
			reloading = false // the re-exec died: what follows is a fresh start
		case strings.Contains(line, fpmRunning):
			_, pid, _ := strings.Cut(line, fpmRunning)
			last, _ = strconv.Atoi(strings.TrimSpace(pid))
			if reloading {
				n++
			} else {
				n = 0
			}
			reloading = false
		}
	}
	if last != master.PID {
		return -1
	}
	return n
}

// ClearLeftovers removes the socket file of each unix listen path that no
// process listens on, with its proof logged (see sock.RemoveStaleSockets). A
// killed master leaves its socket file; php-fpm 8.2 itself also unlinks a
// path nothing answers on before binding, so this makes the step explicit
// and logged rather than necessary.
func (fpmKind) ClearLeftovers(_ context.Context, rc RunConfig, log zerolog.Logger) ([]string, error) {
	return sock.RemoveStaleSockets(rc.UnixListen(), log)
}

// InheritEnv is FPM_SOCKETS="KEY=3,KEY=4,...", with the keys php-fpm
// computes for its listen addresses (REFERENCE.md §4): a unix socket's
// path; inet_ntop(address)+":"+port, IPv6 without brackets (a bare port
// binds "::": ":::9000"). php-fpm's workers accept in blocking mode.
// php-fpm reads at most 128 entries per variable; more go to
// FPM_SOCKETS_1, ...
func (fpmKind) InheritEnv(socks []sock.Held) ([]string, error) {
	var vars []string
	var entries []string
	for i, s := range socks {
		key, err := fpmSocketKey(s)
		if err != nil {
			return nil, err
		}
		if err := syscall.SetNonblock(s.FD(), false); err != nil {
			return nil, fmt.Errorf("listener %s: clear O_NONBLOCK: %w", s.Addr, err)
		}
		entries = append(entries, fmt.Sprintf("%s=%d", key, 3+i))
	}
	for i := 0; i < len(entries); i += fpmSocketsPerVar {
		name := "FPM_SOCKETS"
		if i > 0 {
			name += "_" + strconv.Itoa(i/fpmSocketsPerVar)
		}
		vars = append(vars, name+"="+strings.Join(entries[i:min(i+fpmSocketsPerVar, len(entries))], ","))
	}
	return vars, nil
}

// fpmSocketsPerVar is how many KEY=FD entries php-fpm reads from one
// FPM_SOCKETS variable (FPM_ENV_SOCKET_SET_SIZE).
const fpmSocketsPerVar = 128

// fpmSocketKey is php-fpm's key for a socket (fpm_sockets_hash_op). A
// unix path that php-fpm would not read back as one (it takes a key with
// ":" for an inet address, and splits the variable at "," and "=") has
// none.
func fpmSocketKey(s sock.Held) (string, error) {
	switch s.Family {
	case "unix":
		if s.Path == "" || strings.ContainsAny(s.Path, ":,=") {
			return "", fmt.Errorf("listener %s: php-fpm cannot name this unix socket path in FPM_SOCKETS", s.Addr)
		}
		return s.Path, nil
	case "inet":
		return s.IP.String() + ":" + strconv.Itoa(s.Port), nil
	default: // inet6: inet_ntop writes a v4-mapped address as ::ffff:a.b.c.d
		host := s.IP.String()
		if v4 := s.IP.To4(); v4 != nil {
			host = "::ffff:" + v4.String()
		}
		return host + ":" + strconv.Itoa(s.Port), nil
	}
}

// StaysChild: php-fpm daemonizes with inherited sockets too.
func (fpmKind) StaysChild() bool { return false }

func (fpmKind) InheritVars() []string { return []string{"FPM_SOCKETS"} }

// StartedConf reads php-fpm's master title, "php-fpm: master process
// (/etc/php/8.2/fpm/php-fpm.conf)".
func (fpmKind) StartedConf(argv []string) (string, bool) {
	title := strings.Join(argv, " ")
	_, rest, ok := strings.Cut(title, "master process (")
	conf, _, closed := strings.Cut(rest, ")")
	if !ok || !closed || !filepath.IsAbs(conf) {
		return "", false
	}
	return conf, true
}

// php-fpm's driver and the capabilities it has.
var (
	_ Driver       = fpmKind{}
	_ Inheritor    = fpmKind{}
	_ AcceptProber = fpmKind{}
	_ ConfReporter = fpmKind{}
	_ LoadLogger   = fpmKind{}
)
