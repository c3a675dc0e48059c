package server

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
)

// DefaultGracefulWait bounds a graceful stop by default (Apache's
// GracefulShutdownTimeout defaults to 0, waiting forever).
const DefaultGracefulWait = 30 * time.Second

// ApacheLadder is Apache's stop ladder (REFERENCE.md §1): WINCH asks for a
// graceful stop (listeners close at once, children finish their requests)
// for graceful, then TERM (children are reclaimed, KILLed by the master
// after 9 s) for 10 s, then KILL to every survivor, which is what an
// event/worker orphan of a killed master needs. A graceful of 0 skips the
// WINCH step: Apache's graceful stop polls its children once a second, so
// it refuses new connections for at least a second, where TERM cuts the
// requests in flight but is done in milliseconds.
func ApacheLadder(graceful time.Duration) proc.Ladder {
	return proc.GracefulLadder(syscall.SIGWINCH, graceful)
}

// apacheKind is Apache httpd 2.4 (REFERENCE.md §1, §2, §6).
type apacheKind struct{}

// command returns argv for running the server with args against conf.
func (apacheKind) command(p Profile, conf string, args ...string) []string {
	bin := p.Binary
	if p.Ctl != "" {
		bin = p.Ctl
	}
	return append([]string{bin, "-f", conf}, args...)
}

// RunConfig asks the server itself (`-t -D DUMP_RUN_CFG -D DUMP_INCLUDES`),
// so Include, Define and envvars resolve exactly as the server resolves
// them.
func (k apacheKind) RunConfig(ctx context.Context, p Profile, conf string) (RunConfig, error) {
	// Debian's apache2ctl runs $APACHE_HTTPD: the config test must be the
	// binary's own. `-D DUMP_RUN_CFG` runs in config-dump mode, where
	// mod_ssl skips its file checks (a missing certificate passes): plain
	// -t, which apache2ctl graceful runs, is the config test proper.
	env := []string{"APACHE_HTTPD=" + p.Binary}
	if _, _, _, err := configTest(ctx, p.Name, k.command(p, conf, "-t"), env); err != nil {
		return RunConfig{}, err
	}
	// The dump runs with -C apacheReuseport, which also proves a start
	// with it works (Apache before 2.4.17 has no ListenCoresBucketsRatio);
	// only if it fails is it run again without.
	argv := k.command(p, conf, "-C", apacheReuseport, "-t", "-D", "DUMP_RUN_CFG", "-D", "DUMP_INCLUDES")
	stdout, _, elapsed, err := configTest(ctx, p.Name, argv, env)
	reuseportErr := err
	if reuseportErr != nil {
		argv = k.command(p, conf, "-t", "-D", "DUMP_RUN_CFG", "-D", "DUMP_INCLUDES")
		if stdout, _, elapsed, err = configTest(ctx, p.Name, argv, env); err != nil {
			return RunConfig{}, err
		}
	}
	rc, err := parseRunConfig(stdout)
	if err != nil {
		return RunConfig{}, fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	rc.TLSFiles = apacheTLSFiles(rc.ServerRoot, rc.Files)
	rc.Elapsed, rc.Reuseport = elapsed, reuseportErr == nil
	if reuseportErr != nil {
		rc.NoReuseport = reuseportErr.Error()
	}
	return rc, nil
}

// StartArgv is `BINARY -f CONF -k start`, sourcing the profile's envvars.
func (apacheKind) StartArgv(p Profile, conf string) []string {
	argv := []string{p.Binary, "-f", conf, "-k", "start"}
	if p.EnvVars != "" {
		argv = append([]string{"/bin/sh", "-c", `. "$0" && exec "$@"`, p.EnvVars}, argv...)
	}
	return argv
}

func (apacheKind) Ladder(graceful time.Duration) proc.Ladder { return ApacheLadder(graceful) }

// Linger: Apache's master, stopping gracefully, outlives its children by
// up to a second (see Linger).
func (apacheKind) Linger() *proc.Linger {
	return &proc.Linger{After: syscall.SIGWINCH, Send: syscall.SIGTERM}
}

// ClosesEarly: Apache's graceful stop (WINCH) closes the listeners at once
// and lets the requests in flight finish, so a stop-then-start that waits
// for it leaves nothing accepting meanwhile (see ClosesEarly).
func (apacheKind) ClosesEarly() {}

// ReloadSignal: USR1 is the graceful restart (children finish their
// requests), HUP the hard one.
func (apacheKind) ReloadSignal(hard bool) syscall.Signal {
	if hard {
		return syscall.SIGHUP
	}
	return syscall.SIGUSR1
}

func (apacheKind) Signature(p Profile, rc RunConfig) *ipcguard.Signature {
	s := ipcguard.ApacheSignature(p.Name, rc.User.ID, p.Binary)
	return &s
}

func (apacheKind) Fatal(line string) bool { return isFatal(line) }

// resumedMarks are the notices a master writes once a (new) configuration
// has loaded and it serves: prefork, and event/worker.
var resumedMarks = []string{"AH00163", "AH00489"}

// graceMarks are the notices a master writes when it begins a new
// generation (REFERENCE.md §6): graceful (USR1) and hard (HUP).
var graceMarks = []string{"AH00171", "AH00493", "AH00173", "AH00494"}

// Reloaded: the master logged the new generation, and that its
// configuration loaded ("resuming normal operations", written after
// post_config, where a runtime failure such as AH00020 would have killed
// it).
func (apacheKind) Reloaded(logged string, old ipcguard.Proc) (int, error) {
	mark := fmt.Sprintf("[pid %d:", old.PID)
	if !hasLine(logged, mark, graceMarks) || !hasLine(logged, mark, resumedMarks) {
		return 0, nil
	}
	return old.PID, nil
}

func (apacheKind) Reexecs() bool    { return false }
func (apacheKind) SpeaksHTTP() bool { return true }

// ReloadsLogged counts the restart notices master wrote (REFERENCE.md §6:
// AH00171/AH00493 graceful, AH00173/AH00494 hard) since its own start: a
// "resuming normal operations" that no restart notice of that pid
// preceded is a fresh start of a master with that pid (the pid was
// reused), and the count starts again. A restart notice goes to the log
// the master had open, and the "resuming" after it to the log it reopened:
// across a rotation the pair spans two files, which log presents in order.
func (apacheKind) ReloadsLogged(log string, master ipcguard.Proc) int {
	mark := fmt.Sprintf("[pid %d:", master.PID)
	n, restarting := 0, false
	for _, line := range strings.Split(log, "\n") {
		switch {
		case hasLine(line, mark, graceMarks):
			n++
			restarting = true
		case hasLine(line, mark, resumedMarks):
			if !restarting {
				n = 0
			}
			restarting = false
		}
	}
	return n
}

func (apacheKind) ClearLeftovers(context.Context, RunConfig, zerolog.Logger) ([]string, error) {
	return nil, nil
}

// TrialStarted: the master logged that it serves ("resuming normal
// operations", after post_config); without a readable log, its listeners
// accepting is the proof (see watchTrial). The trial has one master, so
// the line need not carry its pid (an ErrorLogFormat without %P).
func (apacheKind) TrialStarted(logged string, _ ipcguard.Proc) bool {
	return hasLine(logged, "", resumedMarks)
}

// APRDefaultIsSysvsem asks the server's -V whether APR's default process
// mutex is a SysV semaphore.
func APRDefaultIsSysvsem(ctx context.Context, p Profile, conf string) bool {
	argv := apacheKind{}.command(p, conf, "-V")
	out, _, _, _ := configTest(ctx, p.Name, argv, []string{"APACHE_HTTPD=" + p.Binary})
	return strings.Contains(out, "-D APR_USE_SYSVSEM_SERIALIZE")
}

// fatalMarks are the codes that mean a start or reload killed, or will
// kill, the server (REFERENCE.md §1-§3, §7): out of semaphores, port taken,
// mutex removed under it, child fatal, config failure.
var fatalMarks = []string{"AH00023", "AH00072", "AH00144", "AH00146", "AH00050", "AH00020", "AH00015"}

// isFatal reports whether an Apache error log line reports a fatal error.
// A code counts only as the message's own code ("] AH00020:" or ": AH00023:"
// after an errno text), never inside a message, and lines about a client
// request never count: a client can put any text in a logged URI.
func isFatal(line string) bool {
	if strings.HasPrefix(strings.TrimSpace(line), "libgomp:") {
		return true // libgomp writes to stderr, the master's error log
	}
	if strings.Contains(line, "[client ") {
		return false
	}
	for _, m := range fatalMarks {
		if strings.Contains(line, "] "+m+":") || strings.Contains(line, ": "+m+":") {
			return true
		}
	}
	return false
}

// hasLine reports whether a line of text holds mark and one of codes.
func hasLine(text, mark string, codes []string) bool {
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, mark) && slices.ContainsFunc(codes, func(c string) bool { return strings.Contains(line, c) }) {
			return true
		}
	}
	return false
}

// StartedConf reads Apache's -d SERVERROOT and -f FILE (a relative FILE is
// under SERVERROOT); without -f, the configuration is apache2.conf in the
// -d SERVERROOT (Debian's apache2ctl for an instance apache2-NAME). A
// master started with neither names none.
func (apacheKind) StartedConf(argv []string) (string, bool) {
	var root, file string
	for i := 1; i+1 < len(argv); i++ {
		switch argv[i] {
		case "-d":
			root = argv[i+1]
		case "-f":
			file = argv[i+1]
		}
	}
	switch {
	case file != "" && filepath.IsAbs(file):
		return file, true
	case root == "":
		return "", false
	case file != "":
		return filepath.Join(root, file), true
	}
	return filepath.Join(root, "apache2.conf"), true
}

// apacheReuseport makes Apache set SO_REUSEPORT on its listeners
// (listen.c make_sock does only when ListenCoresBucketsRatio > 0) while
// keeping a single listen bucket (buckets = online cores / ratio, at
// least 1), as without the directive. Given with -C, before the
// configuration is read, so a ListenCoresBucketsRatio of the user's own
// wins.
const apacheReuseport = "ListenCoresBucketsRatio 2147483647"

// ReuseportArgv is StartArgv with -C apacheReuseport: a master started so
// can be replaced by one started beside it (see Overlapper).
func (k apacheKind) ReuseportArgv(p Profile, conf string) []string {
	return append(k.StartArgv(p, conf), "-C", apacheReuseport)
}

// Apache's driver and the capabilities it has (a method renamed or
// unexported would otherwise drop one without a word).
var (
	_ Driver        = apacheKind{}
	_ Overlapper    = apacheKind{}
	_ ClosesEarly   = apacheKind{}
	_ StatusCounter = apacheKind{}
	_ Trialer       = apacheKind{}
	_ Lingerer      = apacheKind{}
	_ ConfReporter  = apacheKind{}
	_ LoadLogger    = apacheKind{}
)
