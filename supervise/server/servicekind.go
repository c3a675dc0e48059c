package server

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
)

// confPlaceholder in a service file's start and config_test stands for
// the configuration file (--conf, or the file's conf).
const confPlaceholder = "{conf}"

// serviceKind is a daemon described by a service file (LoadServiceFile):
// every difference from the shared machinery is a value read from the file.
type serviceKind struct {
	start, configTest []string // argv, with confPlaceholder
	pidFile, errorLog string
	user              Account
	reload            syscall.Signal
	hardReload        syscall.Signal
	graceful          syscall.Signal // 0: no graceful step
	rest              proc.Ladder    // the steps after the graceful one
	fatals            []*regexp.Regexp
	reloadedRE        *regexp.Regexp // nil: reloads are not logged
	rejectedRE        *regexp.Regexp // nil: rejections are not logged
	reexec, workers   bool
	http              bool
	sig               *ipcguard.Signature // nil: no IPC that outlives it
	sigExe            bool                // sig.Exe was given, not the binary
	warnings          []string
}

// expand replaces confPlaceholder in argv.
func expand(argv []string, conf string) []string {
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = strings.ReplaceAll(a, confPlaceholder, conf)
	}
	return out
}

// RunConfig runs config_test, when the file has one; the rest of the run
// configuration is what the file says.
func (k *serviceKind) RunConfig(ctx context.Context, p Profile, conf string) (RunConfig, error) {
	rc := RunConfig{PidFile: k.pidFile, ErrorLog: k.errorLog, User: k.user, Warnings: k.warnings}
	if len(k.configTest) == 0 {
		return rc, nil
	}
	began := time.Now()
	_, _, elapsed, err := configTest(ctx, p.Name, expand(k.configTest, conf), nil)
	if err != nil {
		return RunConfig{}, err
	}
	rc.Elapsed = elapsed
	// Like nginx -t, a config test may create the pidfile empty.
	w, err := clearTestPidfile(proc.DefaultRoot, k.pidFile, p.Binary, began)
	if err != nil {
		return RunConfig{}, err
	}
	if w != "" {
		rc.Warnings = append(slices.Clone(rc.Warnings), w)
	}
	return rc, nil
}

func (k *serviceKind) StartArgv(_ Profile, conf string) []string { return expand(k.start, conf) }

// Ladder is the graceful signal for graceful (when the file names one and
// graceful > 0), then the file's ladder.
func (k *serviceKind) Ladder(graceful time.Duration) proc.Ladder {
	l := slices.Clone(k.rest)
	if k.graceful != 0 && graceful > 0 {
		l = append(proc.Ladder{{Signal: k.graceful, Wait: graceful}}, l...)
	}
	return l
}

func (k *serviceKind) ReloadSignal(hard bool) syscall.Signal {
	if hard {
		return k.hardReload
	}
	return k.reload
}

// Signature is the file's [ipc] signature, named after the service, its
// executable the profile's binary unless the file named another.
func (k *serviceKind) Signature(p Profile, _ RunConfig) *ipcguard.Signature {
	if k.sig == nil {
		return nil
	}
	s := *k.sig
	s.Service = p.Name
	if !k.sigExe {
		s.Exe = p.Binary
	}
	return &s
}

func (k *serviceKind) Fatal(line string) bool {
	return strings.TrimSpace(line) != "" && slices.ContainsFunc(k.fatals, func(re *regexp.Regexp) bool { return re.MatchString(line) })
}

// Reloaded: a rejected line means the old configuration serves; then the
// first reloaded line (naming old's pid, when the pattern has a "pid"
// group) proves the reload. A master that re-executes is the one the
// pidfile names once it is no longer old (the caller proves it). Without
// a reloaded pattern the reload counts as logged at once.
func (k *serviceKind) Reloaded(logged string, old ipcguard.Proc) (int, error) {
	if line := firstMatch(k.rejectedRE, logged, -1); line != "" {
		return 0, fmt.Errorf("%w: %s", ErrReloadRejected, strings.TrimSpace(line))
	}
	want := old.PID
	if k.reexec {
		want = -1 // the new master's pid, unknown yet
	}
	if k.reloadedRE != nil && firstMatch(k.reloadedRE, logged, want) == "" {
		return 0, nil
	}
	if !k.reexec {
		return old.PID, nil
	}
	if pid := k.pidfilePID(); pid != old.PID {
		return pid, nil
	}
	return 0, nil
}

// pidfilePID is the pid the pidfile holds now, 0 when none.
func (k *serviceKind) pidfilePID() int {
	pid, _, err := proc.ReadPIDFile(k.pidFile)
	if err != nil {
		return 0
	}
	return pid
}

// firstMatch returns the first line of text that re matches and, when re
// has a "pid" group and pid > 0, names pid; "" when none (or re is nil).
func firstMatch(re *regexp.Regexp, text string, pid int) string {
	if re == nil {
		return ""
	}
	group := re.SubexpIndex("pid")
	for _, line := range strings.Split(text, "\n") {
		m := re.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if group < 0 || pid <= 0 || m[group] == strconv.Itoa(pid) {
			return line
		}
	}
	return ""
}

func (k *serviceKind) Reexecs() bool    { return k.reexec }
func (k *serviceKind) SpeaksHTTP() bool { return k.http }

// ReloadStartsChildren: only a daemon with workers shows a reload by new
// children (ChildrenProver).
func (k *serviceKind) ReloadStartsChildren() bool { return k.workers && !k.reexec }

// ReloadsLogged counts the reloaded lines that name master; -1 unless the
// pattern has a "pid" group: lines of earlier masters would count too.
func (k *serviceKind) ReloadsLogged(log string, master ipcguard.Proc) int {
	if k.reloadedRE == nil || k.reloadedRE.SubexpIndex("pid") < 0 {
		return -1
	}
	n := 0
	for _, line := range strings.Split(log, "\n") {
		if firstMatch(k.reloadedRE, line, master.PID) != "" {
			n++
		}
	}
	return n
}

func (k *serviceKind) ClearLeftovers(context.Context, RunConfig, zerolog.Logger) ([]string, error) {
	return nil, nil
}

// A service file's driver and the capabilities it has.
var (
	_ Driver         = (*serviceKind)(nil)
	_ ChildrenProver = (*serviceKind)(nil)
)
