package trial

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/server"
	"github.com/safe-restart/safe-restart/supervise/verify"
)

// Error is a trial start that failed, with the server's own words.
type Error struct {
	Server string   // profile name
	Why    string   // what the trial saw fail
	Lines  []string // the server's own lines that say why (error logs, starter output)
}

func (e *Error) Error() string {
	said := strings.Join(e.Lines, " | ")
	if said == "" {
		said = "(no line in its logs or output)"
	}
	return fmt.Sprintf("%s: the new configuration passed its config test but cannot run: a trial start in private namespaces failed (%s): %s; "+
		"nothing was touched, the running server still serves the old configuration",
		e.Server, e.Why, said)
}

// Is matches ErrFailed.
func (e *Error) Is(target error) bool { return target == ErrFailed }

// Report says whether a trial start proved the new configuration.
type Report struct {
	// Ran is set when the trial ran to a verdict; Skipped says why it did
	// not (--no-trial, a server without one, a host where the sandbox
	// cannot be built).
	Ran     bool          `json:"ran"`
	Skipped string        `json:"skipped,omitempty"`
	Elapsed time.Duration `json:"elapsed"`
	// Listeners are the addresses the new configuration listened on.
	Listeners []string `json:"listeners"`
	// Dirs are the directories the trial wrote to, each through an overlay.
	Dirs []string `json:"dirs"`
}

// trialEnv marks the trial's init: it names the fd its trialSpec arrives
// on (see trial_child_linux.go).
const trialEnv = "SAFE_RESTART_TRIAL_SPEC_FD"

// trialSpec is what the trial's init needs: the start command, its
// environment, the directories it may write (each gets an overlay),
// the files to empty in them and the files to hide.
type trialSpec struct {
	Argv   []string `json:"argv"`
	Env    []string `json:"env"`
	Dirs   []string `json:"dirs"`
	Remove []string `json:"remove"`
	// Empty are the files the running master writes (its logs), emptied
	// in the overlays whatever their names.
	Empty []string `json:"empty"`
	// NoFile is the running master's RLIMIT_NOFILE (soft, hard), which the
	// trial's starter gets (Debian's apache2ctl raises it to 8192 for the
	// live server); zero: this program's own.
	NoFile [2]uint64 `json:"nofile"`
}

// trialMsg is one line the trial's init reports on its stdout.
type trialMsg struct {
	Setup   string   `json:"setup,omitempty"`   // the sandbox could not be built
	Ready   bool     `json:"ready,omitempty"`   // the sandbox is built
	Emptied []string `json:"emptied,omitempty"` // the files emptied in the overlays
	Started bool     `json:"started,omitempty"` // the starter exited
	Exit    int      `json:"exit,omitempty"`
	Output  string   `json:"output,omitempty"`
}

// Options are what a trial and the bind check need of a start: the
// server, its configuration, where processes are read, the bounds, and
// whether to skip the trial.
type Options struct {
	Profile  server.Profile
	Conf     string // "" means the profile's
	ProcRoot string // "" means /proc
	Timeout  time.Duration
	NoTrial  bool
	Log      zerolog.Logger
}

// ProveRuns proves, before a reload or restart touches the running
// master, that the new configuration can run (README.md invariant 5): a
// trial start in throwaway namespaces (see trial), then a bind check in
// this network namespace of every address the trial listened on that the
// running master does not hold (without a trial: the addresses the config
// test reported, which nginx's and php-fpm's do and Apache's does not).
// A configuration that cannot run is a *Error, an address taken by
// another process ErrCannotBind; an interrupt is ctx's error. Nothing of
// the running server is touched either way.
func (o Options) ProveRuns(ctx context.Context, rc server.RunConfig, master ipcguard.Proc) (*Report, error) {
	if o.NoTrial {
		return &Report{Skipped: "--no-trial"}, nil
	}
	rep, err := o.trial(ctx, rc, master)
	if err != nil {
		return rep, err
	}
	addrs := rep.Listeners
	if !rep.Ran {
		addrs = bindAddrs(rc.Listen) // what the config says (nginx, php-fpm)
	}
	return rep, checkBinds(proc.RootOr(o.ProcRoot), master, o.Profile.Binary, addrs)
}

// trial starts the server with the new configuration in private mount,
// PID, network, IPC and UTS namespaces, where every directory it writes is
// an overlay on a tmpfs and the rest of the file system is read-only;
// waits until its master has started (Apache: "resuming normal
// operations") and every listener accepts; then ends the namespaces, which
// ends every process and removes every file and IPC object of the trial.
// A trial whose sandbox cannot be built here is skipped and says why.
func (o Options) trial(ctx context.Context, rc server.RunConfig, master ipcguard.Proc) (*Report, error) {
	k, ok := o.Profile.Driver.(server.Trialer)
	if !ok {
		return &Report{Skipped: "no trial start for " + o.Profile.Kind + " servers: their own config test is the check"}, nil
	}
	spec, err := o.trialSpec(rc)
	if err != nil {
		return o.trialSkipped(err), nil
	}
	spec.Empty, spec.NoFile = masterWrites(proc.RootOr(o.ProcRoot), master.PID)
	for range maxTrialRounds {
		rep, err := o.runTrial(ctx, spec, rc, k)
		var te *Error
		if errors.As(err, &te) {
			if more := readOnlyDirs(te.Lines, spec.Dirs); len(more) > 0 {
				// The server writes where no overlay was: not its failure.
				o.Log.Info().Strs("dirs", more).Msg("the trial wrote outside the directories it was given: trying again with overlays on them too")
				spec.Dirs = overlayDirs(append(spec.Dirs, more...))
				continue
			}
		}
		if errors.Is(err, errSandbox) {
			return o.trialSkipped(err), nil
		}
		return rep, err
	}
	return o.trialSkipped(errors.New("it kept writing outside the directories it was given")), nil
}

// maxTrialRounds bounds the trials of one change: each round after the
// first adds overlays on the directories the last one could not write.
const maxTrialRounds = 3

// errSandbox marks a trial whose sandbox could not be built here.
var errSandbox = errors.New("cannot build the trial's sandbox")

// trialSkipped logs and reports a trial that could not run here.
func (o Options) trialSkipped(err error) *Report {
	why := "trial start unavailable: " + err.Error()
	o.Log.Warn().Str("reason", why).Msg("no trial start: the new configuration is proven only by the server's own config test")
	return &Report{Skipped: why}
}

// trialSpec is the trial of rc's server: its start command and
// environment (without what would reach this machine's service manager:
// NOTIFY_SOCKET, socket activation), and the directories it writes (the
// pidfile's, the error log's, the mutexes' and unix sockets'), resolved.
func (o Options) trialSpec(rc server.RunConfig) (trialSpec, error) {
	var dirs []string
	for _, p := range append([]string{rc.PidFile, verify.LogFilePath(rc.ServerRoot, rc.ErrorLog)}, rc.UnixListen()...) {
		if p != "" {
			dirs = append(dirs, filepath.Dir(p))
		}
	}
	dirs = append(dirs, mutexDirs(rc.Mutexes)...)
	var real []string
	for _, d := range dirs {
		r, err := filepath.EvalSymlinks(d)
		if err != nil || r == "/dev" || r == "/proc" || isBelow(r, "/dev") || isBelow(r, "/proc") {
			// Not there: the server cannot write there either. Or a stream
			// (ErrorLog /dev/stderr, /proc/self/fd/2): nothing to cover.
			continue
		}
		if err := overlayable(r); err != nil {
			return trialSpec{}, err
		}
		real = append(real, r)
	}
	spec := trialSpec{
		Argv: o.Profile.Driver.StartArgv(o.Profile, cmp.Or(o.Conf, o.Profile.Conf)),
		Env: slices.DeleteFunc(os.Environ(), func(kv string) bool {
			name, _, _ := strings.Cut(kv, "=")
			return slices.Contains(trialUnsetEnv, name)
		}),
		Dirs: overlayDirs(real),
	}
	if pf, err := filepath.EvalSymlinks(filepath.Dir(rc.PidFile)); err == nil {
		// The running master's pidfile: a start that found it would say
		// "already running" (its pid may name a trial process).
		spec.Remove = []string{filepath.Join(pf, filepath.Base(rc.PidFile))}
	}
	return spec, nil
}

// masterWrites returns the files the running master pid has open for
// writing (/proc/PID/fd with its fdinfo flags: its logs) and its
// RLIMIT_NOFILE; nothing when they cannot be read.
func masterWrites(procRoot string, pid int) ([]string, [2]uint64) {
	var files []string
	dir := filepath.Join(procRoot, strconv.Itoa(pid), "fd")
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil || !filepath.IsAbs(target) || strings.HasSuffix(target, " (deleted)") {
			continue // a socket, a pipe, an unlinked file
		}
		info, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "fdinfo", e.Name()))
		if err == nil && writable(string(info)) && !slices.Contains(files, target) {
			files = append(files, target)
		}
	}
	slices.Sort(files)
	return files, rlimitNoFile(pid)
}

// writable reports whether an fdinfo text's flags (octal) open for writing:
//
//	pos:	0
//	flags:	02102001
func writable(fdinfo string) bool {
	for _, line := range strings.Split(fdinfo, "\n") {
		if v, ok := strings.CutPrefix(line, "flags:"); ok {
			flags, err := strconv.ParseUint(strings.TrimSpace(v), 8, 64)
			return err == nil && flags&3 != 0 // O_WRONLY or O_RDWR
		}
	}
	return false
}

// trialUnsetEnv are the variables the trial's server does not get: they
// lead to this machine's service manager (sd_notify, socket activation).
var trialUnsetEnv = []string{trialEnv, "NOTIFY_SOCKET", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "WATCHDOG_PID", "WATCHDOG_USEC"}

// overlayable refuses a directory the trial cannot put an overlay on: the
// root, one holding the trial's own /dev/shm or /proc, or a path that
// overlayfs's options cannot carry.
func overlayable(dir string) error {
	for _, reserved := range []string{"/dev/shm", "/proc"} {
		if dir == "/" || dir == reserved || isBelow(reserved, dir) || isBelow(dir, reserved) {
			return fmt.Errorf("the server writes to %q, which the trial cannot cover with an overlay", dir)
		}
	}
	if strings.ContainsAny(dir, ",:\\") {
		return fmt.Errorf("the server writes to %q, which overlayfs options cannot name", dir)
	}
	return nil
}

// overlayDirs sorts dirs and drops duplicates and those inside another
// on the same mount (one overlay covers them); a directory on a mount of
// its own below another keeps its own overlay, after its parent's.
func overlayDirs(dirs []string) []string { return outermostBy(dirs, sameMount) }

// mutexDirs returns the dir= of each Mutex line of DUMP_RUN_CFG
// (`dir="/var/run/apache2/" mechanism=default`).
func mutexDirs(mutexes map[string]string) []string {
	var out []string
	for _, line := range mutexes {
		if _, rest, ok := strings.Cut(line, `dir="`); ok {
			if dir, _, ok := strings.Cut(rest, `"`); ok && filepath.IsAbs(dir) {
				out = append(out, filepath.Clean(dir))
			}
		}
	}
	slices.Sort(out)
	return out
}

// outermost sorts dirs and drops duplicates and those inside another.
func outermost(dirs []string) []string {
	return outermostBy(dirs, func(string, string) bool { return true })
}

// outermostBy sorts dirs and drops duplicates and each one inside a kept
// one for which covers(kept, d) holds.
func outermostBy(dirs []string, covers func(outer, inner string) bool) []string {
	dirs = slices.Clone(dirs)
	slices.Sort(dirs)
	dirs = slices.Compact(dirs)
	var out []string
	for _, d := range dirs {
		if !slices.ContainsFunc(out, func(k string) bool { return isBelow(d, k) && covers(k, d) }) {
			out = append(out, d)
		}
	}
	return out
}

// isBelow reports whether path is strictly inside dir.
func isBelow(path, dir string) bool {
	return strings.HasPrefix(path, strings.TrimSuffix(dir, "/")+"/")
}

// readOnlyDirs returns the directories of the absolute paths named in
// lines that report EROFS ("(30)Read-only file system: AH00091: could not
// open error log file /srv/logs/error.log."), other than dirs already
// given: places the server writes that the trial did not expect.
func readOnlyDirs(lines []string, have []string) []string {
	var out []string
	for _, line := range lines {
		if !strings.Contains(line, "Read-only file system") {
			continue
		}
		for _, f := range strings.Fields(line) {
			f = strings.Trim(f, `"'.,;:()[]`)
			if !filepath.IsAbs(f) || f == "/" {
				continue
			}
			d := filepath.Dir(f)
			if r, err := filepath.EvalSymlinks(d); err == nil && !slices.Contains(have, r) && !slices.Contains(out, r) && overlayable(r) == nil {
				out = append(out, r)
			}
		}
	}
	return out
}
