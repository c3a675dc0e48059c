package systemd

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/internal/atomicfile"
	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/server"
)

// Unit is the systemd service a server runs under, as systemctl shows it.
type Unit struct {
	Name    string `json:"name"`               // "apache2.service"
	Load    string `json:"load_state"`         // LoadState: loaded, not-found, masked
	Active  string `json:"active_state"`       // ActiveState: active, inactive, failed, activating, ...
	Sub     string `json:"sub_state"`          // SubState: running, dead, auto-restart, ...
	MainPID int    `json:"main_pid"`           // MainPID, 0 when none
	CGroup  string `json:"cgroup"`             // ControlGroup, "" while nothing runs
	Type    string `json:"type"`               // Type=: forking, notify, simple, ...
	Restart string `json:"restart"`            // Restart=: no, on-abort, always, ...
	PIDFile string `json:"pid_file,omitempty"` // PIDFile=
	// Inside says safe-restart runs in the unit's own control group: as
	// one of its ExecStart=, ExecReload= or ExecStop= commands, which
	// systemd waits for. It then acts on the processes itself: a job of
	// the unit queued from there would wait for this very command.
	Inside bool `json:"inside"`

	systemctl string // the systemctl binary; "systemctl" in $PATH when empty
}

// unitTimeout bounds one systemctl call that does not run a job, and how
// long a stop waits for systemd to finish reacting to the master's exit
// (ExecStop=, ExecStopPost=).
const unitTimeout = 30 * time.Second

// showProps are the unit properties safe-restart reads.
const showProps = "Id,LoadState,ActiveState,SubState,MainPID,ControlGroup,Type,Restart,PIDFile"

// systemdRuns reports whether systemd is the service manager: PID 1 is
// systemd, and /run/systemd/system exists (sd_booted(3)).
func systemdRuns(root string) bool {
	comm, err := os.ReadFile(filepath.Join(root, "1", "comm"))
	if err != nil || strings.TrimSpace(string(comm)) != "systemd" {
		return false
	}
	fi, err := os.Stat("/run/systemd/system")
	return err == nil && fi.IsDir()
}

// UnitQuery says how to find the unit of a server (see FindUnit).
type UnitQuery struct {
	Profile server.Profile
	// Conf is the config the caller names; the profile's own unit runs
	// the distribution's config, so another one is no unit's unless Name
	// says so or its running master is in one.
	Conf string
	// Name is the unit the caller names (--unit); "" finds it.
	Name     string
	ProcRoot string // "/proc" when empty
	Log      zerolog.Logger
}

// FindUnit returns the systemd service of the server, or nil when it has
// none: systemd is not PID 1, or no unit is found. The unit is Name when
// given (ErrUnknownUnit if systemd does not have it loaded); else the
// service whose control group holds the running master (master may be
// nil), if that service is the profile's or the master is its main
// process (a master that a script in cron.service or a shell started is
// not cron's); else the profile's own unit (apache2.service,
// nginx.service, php8.2-fpm.service, ...) when the config is the
// profile's and systemd has it loaded. An error reading a unit wraps
// ErrServiceManager.
func FindUnit(ctx context.Context, q UnitQuery, master *ipcguard.Proc) (*Unit, error) {
	root := proc.RootOr(q.ProcRoot)
	if !systemdRuns(root) {
		return nil, nil
	}
	u, err := q.namedOrHolding(ctx, root, master)
	if u == nil && err == nil && q.Profile.Unit != "" && samePath(cmp.Or(q.Conf, q.Profile.Conf), q.Profile.Conf) {
		u, err = loadedUnit(ctx, q.Profile.Unit)
	}
	if err != nil || u == nil {
		if err == nil {
			q.Log.Info().Msg("systemd is the service manager, but no unit runs this server: acting on its processes directly (--unit names one)")
		}
		return nil, err
	}
	u.Inside = inCGroup(procCGroup(root, os.Getpid()), u.CGroup)
	u.logFound(q.Log)
	return u, nil
}

// samePath reports whether paths a and b name the same file (the same
// path once absolute and cleaned, or one file through symlinks).
func samePath(a, b string) bool {
	a, errA := filepath.Abs(a)
	b, errB := filepath.Abs(b)
	if errA != nil || errB != nil {
		return false
	}
	if a == b {
		return true
	}
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(fa, fb)
}

// UnitOf is FindUnit with the master the pidfile names, if any.
func UnitOf(ctx context.Context, q UnitQuery, pidFile string) (*Unit, error) {
	var master *ipcguard.Proc
	if m, err := proc.FromPIDFile(proc.RootOr(q.ProcRoot), pidFile, q.Profile.Binary); err == nil {
		master = &m
	}
	return FindUnit(ctx, q, master)
}

// namedOrHolding is the unit q names, or else the service holding the
// running master when it is the server's (see FindUnit); nil when neither.
func (q UnitQuery) namedOrHolding(ctx context.Context, root string, master *ipcguard.Proc) (*Unit, error) {
	if q.Name != "" {
		if strings.ContainsAny(q.Name, "*?[") {
			return nil, fmt.Errorf("%w: --unit %s: one unit, not a pattern", server.ErrUnknownUnit, q.Name)
		}
		u, err := loadedUnit(ctx, q.Name)
		if err == nil && (u == nil || !strings.HasSuffix(u.Name, ".service")) {
			err = fmt.Errorf("%w: --unit %s: systemd has no such service loaded", server.ErrUnknownUnit, q.Name)
		}
		if err != nil {
			return nil, err
		}
		return u, nil
	}
	if master == nil {
		return nil, nil
	}
	name := serviceOfCGroup(procCGroup(root, master.PID))
	if name == "" {
		return nil, nil
	}
	u, err := loadedUnit(ctx, name)
	if err != nil || u == nil || name == q.Profile.Unit || u.MainPID == master.PID {
		return u, err
	}
	q.Log.Info().Str("cgroup_of", u.Name).Int("main_pid", u.MainPID).Int("master", master.PID).
		Msg("the master runs in another service's control group, which does not manage it")
	return nil, nil
}

// loadedUnit reads the unit called name (systemctl adds ".service" to a
// name without a unit suffix, and Id says what it made of it); nil when
// systemd does not have it loaded.
func loadedUnit(ctx context.Context, name string) (*Unit, error) {
	u := &Unit{Name: name}
	if err := u.Refresh(ctx); err != nil || u.Load != "loaded" {
		return nil, err
	}
	return u, nil
}

// logFound says which unit safe-restart found and how it acts on it.
func (u *Unit) logFound(log zerolog.Logger) {
	how := "acting through the unit's own start and stop jobs, so that systemd follows every change"
	if u.Inside {
		how = "running as one of the unit's own commands: acting on the server's processes directly"
	}
	log.Info().Str("manager", "systemd").Str("unit", u.Name).Str("active_state", u.Active).Int("main_pid", u.MainPID).Msg(how)
}

// Acts reports whether the server's start and stop go through the unit's
// jobs: u is a unit, and safe-restart is not one of its commands.
func (u *Unit) Acts() bool { return u != nil && !u.Inside }

// Refresh reads the unit's properties again.
func (u *Unit) Refresh(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, unitTimeout)
	defer cancel()
	out, err := u.run(ctx, "show", "--property", showProps, "--", u.Name)
	if err != nil {
		return fmt.Errorf("%w: systemctl show %s: %w: %s", ErrServiceManager, u.Name, err, strings.TrimSpace(out))
	}
	if err := u.parseShow(out); err != nil {
		return fmt.Errorf("%w: %w", ErrServiceManager, err)
	}
	return nil
}

// parseShow reads systemctl show's KEY=VALUE lines.
func (u *Unit) parseShow(out string) error {
	text := map[string]*string{"LoadState": &u.Load, "ActiveState": &u.Active, "SubState": &u.Sub,
		"ControlGroup": &u.CGroup, "Type": &u.Type, "Restart": &u.Restart, "PIDFile": &u.PIDFile}
	for line := range strings.Lines(out) {
		k, v, _ := strings.Cut(strings.TrimRight(line, "\n"), "=")
		switch {
		case k == "Id" && v != "":
			u.Name = v // what systemctl made of the name: php8.2-fpm is php8.2-fpm.service
		case k == "MainPID":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return fmt.Errorf("systemctl show %s: bad MainPID %q", u.Name, v)
			}
			u.MainPID = n
		case text[k] != nil:
			*text[k] = v
		}
	}
	if u.Load == "" {
		return fmt.Errorf("systemctl show %s: no LoadState in %q", u.Name, out)
	}
	return nil
}

// run runs systemctl with args (never asking for a password) and returns
// its output.
func (u *Unit) run(ctx context.Context, args ...string) (string, error) {
	return proc.CombinedOutput(ctx, append([]string{cmp.Or(u.systemctl, "systemctl"), "--no-ask-password"}, args...))
}

// RunJob runs the unit's start or restart job (verb) and waits for it
// (systemctl start: the unit's ExecStartPre=, ExecStart= and, for
// Type=notify, READY=1; restart: its stop first). Its output is
// systemctl's, and on failure the unit's journal since the job: the
// server's own words, which a start through systemd sends there.
func (u *Unit) RunJob(ctx context.Context, root, verb string, log zerolog.Logger) (string, error) {
	if err := u.awaitDeadMain(ctx, root); err != nil {
		return "", err
	}
	since := time.Now()
	log.Info().Str("unit", u.Name).Msg("through systemd: systemctl " + verb + " " + u.Name)
	ctx, cancel := context.WithTimeout(ctx, StartTimeout)
	defer cancel()
	out, err := u.run(ctx, verb, "--", u.Name)
	if err != nil {
		return out + u.journal(ctx, since), fmt.Errorf("systemctl %s %s: %w", verb, u.Name, err)
	}
	return out, nil
}

// StartTimeout bounds a start or restart job: systemd's own default
// for a start (TimeoutStartSec=90s) and a margin; a local start command
// (see supervise's StartOptions.runStarter) gets as long at least.
const StartTimeout = 2 * time.Minute

// awaitDeadMain waits until systemd has seen a dead main process go: a
// unit still "active" with a MainPID that no longer runs (a master that
// just died, before systemd reaped it) would take a start job for a no-op.
func (u *Unit) awaitDeadMain(ctx context.Context, root string) error {
	return proc.PollUntil(ctx, unitTimeout, func() (bool, error) {
		if err := u.Refresh(ctx); err != nil {
			return false, err
		}
		return u.Active != "active" || u.MainPID == 0 || pidAlive(root, u.MainPID), nil
	})
}

// pidAlive reports whether pid is a process that has not exited (its
// /proc/PID/stat state is not Z or X).
func pidAlive(root string, pid int) bool {
	p, err := ipcguard.ReadProc(root, pid)
	return err == nil && p.Alive()
}

// journal returns the unit's journal lines since t, "" when there is no
// journal to read.
func (u *Unit) journal(ctx context.Context, t time.Time) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := proc.CombinedOutput(ctx, []string{"journalctl", "--quiet", "--no-pager", "--output", "cat",
		"--unit", u.Name, "--since", "@" + strconv.FormatInt(t.Unix(), 10)})
	if err != nil {
		return ""
	}
	return "\n" + out
}

// IsMain reports whether master is the unit's server, the unit that
// safe-restart acts through (see acts): its main process, or a process in
// its control group (systemd lost track of its main PID). Only then may a
// stop of master queue the unit's stop job, which stops whatever the unit
// runs. An error (systemd could not be asked) wraps ErrServiceManager.
func (u *Unit) IsMain(ctx context.Context, root string, master ipcguard.Proc) (bool, error) {
	if !u.Acts() {
		return false, nil
	}
	if err := u.Refresh(ctx); err != nil {
		return false, err
	}
	return u.MainPID == master.PID || inCGroup(procCGroup(root, master.PID), u.CGroup), nil
}

// BeforeStep is the stop ladder's hook (LadderRun.Before) for a master
// that is the unit's main process. Before a step whose signal systemd
// would count as the service failing if the master died of it (SIGKILL,
// or any signal but TERM, INT, HUP, PIPE and the built-in server's own
// graceful stop, which it handles by exiting 0: Restart=on-abort and
// on-failure would start it again at once), or before the first step when
// any exit restarts it (Restart=always, on-success), it queues the unit's
// stop job once, so that systemd knows the service is being stopped: it
// restarts nothing, and runs the unit's own ExecStop= and kill settings
// beside the ladder (with Restart=always that cuts the graceful step to
// the unit's TimeoutStopSec=).
func (u *Unit) BeforeStep(p server.Profile, log zerolog.Logger) func(context.Context, proc.Step) error {
	queued, steps := false, 0
	return func(ctx context.Context, s proc.Step) error {
		steps++
		if queued || (p.ExitsCleanOn(s.Signal) && u.Restart != "always" && u.Restart != "on-success") {
			return nil
		}
		ctx, cancel := context.WithTimeout(ctx, unitTimeout)
		defer cancel()
		log.Info().Str("unit", u.Name).Str("restart", u.Restart).Str("signal", proc.SigName(s.Signal)).
			Msg("queueing the unit's stop job first, so that systemd restarts nothing (systemctl stop --no-block)")
		if out, err := u.run(ctx, "stop", "--no-block", "--", u.Name); err != nil {
			err = fmt.Errorf("systemctl stop --no-block %s: %w: %s", u.Name, err, strings.TrimSpace(out))
			if steps == 1 {
				return fmt.Errorf("%w: %w", ErrServiceManager, err) // nothing signalled yet: a refusal
			}
			return err
		}
		queued = true
		return nil
	}
}

// SettleStopped waits, after the ladder stopped the unit's main process
// (wasMain) or when the pidfile named no live master (master.PID 0), until
// systemd has seen it exit and finished its own stop (ExecStop=,
// ExecStopPost=), then clears a failed state (systemctl reset-failed): a
// stop leaves the unit inactive. A unit active again (or still active with
// a live main process the pidfile does not name) runs the server still:
// an error. After the stop of another master (a second instance) the unit
// is none of its business and is left as it is. Its errors come after
// acting: they never wrap ErrServiceManager.
func (u *Unit) SettleStopped(ctx context.Context, root string, master ipcguard.Proc, wasMain bool, log zerolog.Logger) error {
	if !u.Acts() || (master.PID != 0 && !wasMain) {
		return nil
	}
	err := proc.PollUntil(ctx, unitTimeout, func() (bool, error) {
		if err := u.Refresh(ctx); err != nil {
			return false, err
		}
		return (master.PID == 0 || u.MainPID != master.PID) && !transitional(u.Active), nil
	})
	if err != nil {
		return fmt.Errorf("systemd did not finish stopping %s (ActiveState=%s SubState=%s MainPID=%d): %v", u.Name, u.Active, u.Sub, u.MainPID, err)
	}
	switch {
	case u.Active == "failed":
		log.Info().Str("unit", u.Name).Msg("the unit counts the stop as a failure (the ladder killed the master, or it had died): systemctl reset-failed")
		ctx, cancel := context.WithTimeout(ctx, unitTimeout)
		defer cancel()
		if out, err := u.run(ctx, "reset-failed", "--", u.Name); err != nil {
			return fmt.Errorf("systemctl reset-failed %s: %v: %s", u.Name, err, strings.TrimSpace(out))
		}
	case u.Active == "active" && master.PID == 0 && u.MainPID != 0 && pidAlive(root, u.MainPID):
		return fmt.Errorf("unit %s is active with main process %d, but the pidfile names no live master: safe-restart signals only a master it can prove; systemctl stop %s stops what the unit runs", u.Name, u.MainPID, u.Name)
	case u.Active == "active" && master.PID != 0:
		return fmt.Errorf("unit %s is active again after the stop, main process %d (SubState=%s): systemd runs the server", u.Name, u.MainPID, u.Sub)
	}
	return nil
}

// transitional reports whether ActiveState is one systemd leaves by itself.
func transitional(active string) bool {
	return active == "activating" || active == "deactivating" || active == "reloading" || active == "refreshing"
}

// CheckServes verifies systemd's view of a server that serves (README.md
// invariant 8): the unit is active, its MainPID is master, and every
// process of tree is in the unit's control group. systemd reads a main
// PID a moment after its start job returns, so this polls briefly.
func (u *Unit) CheckServes(ctx context.Context, root string, master ipcguard.Proc, tree []ipcguard.Proc) error {
	if !u.Acts() {
		return nil // a unit's own command: systemd judges the unit once it returns
	}
	var why string
	err := proc.PollUntil(ctx, 5*time.Second, func() (bool, error) {
		if err := u.Refresh(ctx); err != nil {
			return false, err
		}
		why = u.ModelError(root, master, tree)
		return why == "", nil
	})
	if why != "" {
		return fmt.Errorf("%w: %s", ErrUnitModel, why)
	}
	return err
}

// ModelError says what in systemd's view of the unit is not the server
// that serves, "" when nothing.
func (u *Unit) ModelError(root string, master ipcguard.Proc, tree []ipcguard.Proc) string {
	if u.Active != "active" {
		return fmt.Sprintf("unit %s is %s (%s) while master %d serves", u.Name, u.Active, u.Sub, master.PID)
	}
	if u.MainPID != master.PID {
		return fmt.Sprintf("unit %s has MainPID %d, but the pidfile's master is %d", u.Name, u.MainPID, master.PID)
	}
	var outside []string
	for _, p := range tree {
		if cg := procCGroup(root, p.PID); !inCGroup(cg, u.CGroup) && proc.SameAlive(root, p) {
			outside = append(outside, fmt.Sprintf("%d in %q", p.PID, cg))
		}
	}
	if len(outside) > 0 {
		return fmt.Sprintf("processes outside the unit's control group %s: %s", u.CGroup, strings.Join(outside, ", "))
	}
	return ""
}

// procCGroup is pid's cgroup v2 path (the "0::" line of /proc/PID/cgroup),
// "" when unreadable or on a host without the unified hierarchy.
func procCGroup(root string, pid int) string {
	data, err := os.ReadFile(filepath.Join(root, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return ""
	}
	return proc.CgroupV2(string(data))
}

// serviceOfCGroup is the service unit whose control group is cg:
// "apache2.service" for "/system.slice/apache2.service", "" for a cgroup
// that is not a service's (a session's scope, the root, a sub-group) or is
// a user manager's (below user@UID.service: the system manager, which
// safe-restart asks, does not know its services).
func serviceOfCGroup(cg string) string {
	els := strings.Split(cg, "/")
	leaf := els[len(els)-1]
	if !strings.HasSuffix(leaf, ".service") || strings.Contains(cg, "/user@") {
		return ""
	}
	return leaf
}

// inCGroup reports whether cgroup path cg is unitCG or below it (a
// sub-group the unit delegates).
func inCGroup(cg, unitCG string) bool {
	return unitCG != "" && (cg == unitCG || strings.HasPrefix(cg, unitCG+"/"))
}

// OverlapBlocker says why an overlap in the unit cannot work, "" when it
// can: the unit must be Type=forking (systemd follows a forking service's
// PID file; a notify one waits for its main process's messages) and old
// its MainPID (systemd reads the PID file only when its main process
// exits); and nsenter must be there when the unit has its own mount
// namespace. The host's room is planOverlap's to judge.
func (u *Unit) OverlapBlocker(root string, old ipcguard.Proc) string {
	switch {
	case u.Type != "forking":
		return fmt.Sprintf("unit %s is Type=%s: systemd follows a new master through the PID file of a forking service only", u.Name, u.Type)
	case u.MainPID != old.PID:
		return fmt.Sprintf("master %d is not unit %s's main process (MainPID %d)", old.PID, u.Name, u.MainPID)
	}
	if argv := u.InUnitArgv(root, []string{"true"}); argv[0] == "nsenter" {
		if _, err := exec.LookPath("nsenter"); err != nil {
			return "the unit has its own mount namespace, and nsenter is missing: " + err.Error()
		}
	}
	return ""
}

// pidFileDropIn is the runtime drop-in that gives a unit its PID file for
// an overlap.
const pidFileDropIn = "safe-restart-pidfile.conf"

// pidFileDropInPath is where the unit's pidFileDropIn goes.
func (u *Unit) pidFileDropInPath() string {
	return filepath.Join("/run/systemd/system", u.Name+".d", pidFileDropIn)
}

// SetPIDFile makes systemd read the unit's main PID from path when its
// main process exits (PIDFile=). A unit that names no file (Debian's
// apache2.service) gets the runtime drop-in pidFileDropInPath, and systemd
// reloads its units; added says so. A unit naming another file is left
// alone: an error.
func (u *Unit) SetPIDFile(ctx context.Context, path string, log zerolog.Logger) (added bool, err error) {
	switch {
	case u.PIDFile != "" && samePath(u.PIDFile, path):
		return false, nil
	case u.PIDFile != "":
		return false, fmt.Errorf("unit %s reads PIDFile=%s, but the server writes %s", u.Name, u.PIDFile, path)
	case needsQuoting(path):
		return false, fmt.Errorf("the pidfile %q would need quoting in a unit file", path)
	}
	file := u.pidFileDropInPath()
	text := "# Written by safe-restart for a restart of " + u.Name + ": systemd follows the new\n" +
		"# master through this file. Removed when it does; else gone at the next boot.\n" +
		"[Service]\nPIDFile=" + strings.Replace(path, "/var/run/", "/run/", 1) + "\n"
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return false, err
	}
	if err := atomicfile.WriteFile(file, []byte(text), 0o644); err != nil {
		return false, err
	}
	log.Info().Str("unit", u.Name).Str("path", file).Str("pid_file", path).Msg("gave the unit a PID file; systemctl daemon-reload")
	err = u.daemonReload(ctx)
	if err == nil {
		err = u.Refresh(ctx)
	}
	if err == nil && !samePath(u.PIDFile, path) {
		err = fmt.Errorf("unit %s reads PIDFile=%q even with %s", u.Name, u.PIDFile, file)
	}
	if err != nil {
		return false, errors.Join(err, u.UnsetPIDFile(ctx, log))
	}
	return true, nil
}

// UnsetPIDFile removes the drop-in SetPIDFile wrote, and has systemd
// reload its units: a running service keeps its MainPID.
func (u *Unit) UnsetPIDFile(ctx context.Context, log zerolog.Logger) error {
	file := u.pidFileDropInPath()
	if err := os.Remove(file); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	_ = os.Remove(filepath.Dir(file)) // only if empty
	log.Info().Str("unit", u.Name).Str("path", file).Msg("removed the unit's PID file drop-in; systemctl daemon-reload")
	return u.daemonReload(ctx)
}

// daemonReload runs systemctl daemon-reload, bounded by unitTimeout.
func (u *Unit) daemonReload(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, unitTimeout)
	defer cancel()
	if out, err := u.run(ctx, "daemon-reload"); err != nil {
		return fmt.Errorf("systemctl daemon-reload: %w: %s", err, strings.TrimSpace(out))
	}
	return nil
}

// InUnitArgv wraps argv so that it runs in the mount namespace of the
// unit's main process, when that is not safe-restart's (PrivateTmp= and
// the like), through nsenter(1).
func (u *Unit) InUnitArgv(root string, argv []string) []string {
	ns := filepath.Join(root, strconv.Itoa(u.MainPID), "ns", "mnt")
	ours, err1 := os.Stat(filepath.Join(root, "self", "ns", "mnt"))
	theirs, err2 := os.Stat(ns)
	if u.MainPID <= 0 || err1 != nil || err2 != nil || os.SameFile(ours, theirs) {
		return argv
	}
	return append([]string{"nsenter", "--mount=" + ns, "--"}, argv...)
}
