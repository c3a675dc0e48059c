package supervise

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

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/internal/atomicfile"
	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/server"
)

// unitOverlap is a restart of the unit's own master (its MainPID) with no
// moment without a listener (see replaceBeside): the new master starts
// beside the old one, in the unit's control group and the old master's
// mount namespace (PrivateTmp=), and when the old master exits, systemd
// takes the new one for the unit's main process from the unit's PID file
// (service.c: a forking service may move to a new PID if it updates its
// PID file before the old one exits, which the old master's stop sees
// to). A server with its own binary upgrade (server.Upgrader: nginx) starts the
// new master itself, as the old one's child (upgradeBeside). A unit
// without that PIDFile= gets it for the restart only (setPIDFile), removed
// once systemd follows the new master. It reports handled false, having
// changed nothing, when no overlap can work here: the caller then runs the
// unit's restart job.
func unitOverlap(ctx context.Context, s StopOptions, st StartOptions, sig *ipcguard.Signature, rc server.RunConfig, old ipcguard.Proc) (RestartReport, bool, error) {
	k, upgrades := st.Profile.Driver.(server.Upgrader)
	if _, ok := st.Profile.Driver.(server.Overlapper); !ok && !upgrades {
		return RestartReport{}, false, nil // php-fpm: the unit's restart job
	}
	root := cmp.Or(st.ProcRoot, "/proc")
	st.intoUnit = true
	b, why := planUnitOverlap(root, old, sig, st, upgrades)
	if why != "" {
		st.Log.Info().Str("unit", st.unit.Name).Str("reason", why).Msg("no overlap in the unit: its restart job replaces the master")
		return RestartReport{OverlapSkipped: why}, false, nil
	}
	added, err := st.unit.setPIDFile(ctx, rc.PidFile, st.Log)
	if err != nil {
		b.undoLogged()
		st.Log.Warn().Err(err).Str("unit", st.unit.Name).Msg("cannot give the unit a PID file, so systemd could not follow a new master: no overlap")
		return RestartReport{OverlapSkipped: err.Error()}, false, nil
	}
	s.unit = nil // the old master's stop never queues a stop of the unit: the new master is in it
	var rep RestartReport
	handled := true
	if upgrades {
		handled, err = upgradeBeside(ctx, s, st, sig, rc, old, k, &rep)
	} else {
		err = replaceBeside(ctx, s, st, sig, rc, old, b, &rep)
	}
	if handled && err == nil {
		master := *rep.Start.Master
		err = st.unit.checkServes(ctx, root, master, st.tree(root, master))
	}
	if added && (!handled || err == nil || rep.Stop.Master == nil) {
		// systemd follows the new master, or the old one's stop never
		// began: the unit is given back as it was; its MainPID stays.
		err = errors.Join(err, st.unit.unsetPIDFile(ctx, st.Log))
	}
	if !handled {
		return RestartReport{OverlapSkipped: "master " + strconv.Itoa(old.PID) + " did not act on " + proc.SigName(k.UpgradeSignal())}, false, err
	}
	return rep, true, err
}

// planUnitOverlap says why no overlap in the unit can replace old, "" when
// one can; b holds the old sockets for a new master beside them (see
// planOverlap), nil for a binary upgrade (upgrades), which needs only the
// room for two generations.
func planUnitOverlap(root string, old ipcguard.Proc, sig *ipcguard.Signature, st StartOptions, upgrades bool) (b *beside, why string) {
	switch why = st.unit.overlapBlocker(root, old); {
	case why != "":
		return nil, why
	case !upgrades:
		return planOverlap(root, old, sig, st)
	case st.NoOverlap:
		return nil, overlapDisabled
	}
	return nil, overlapBlocker(root, old, sig, st)
}

// overlapBlocker says why an overlap in the unit cannot work, "" when it
// can: the unit must be Type=forking (systemd follows a forking service's
// PID file; a notify one waits for its main process's messages) and old
// its MainPID (systemd reads the PID file only when its main process
// exits); and nsenter must be there when the unit has its own mount
// namespace. The host's room is planOverlap's to judge.
func (u *Unit) overlapBlocker(root string, old ipcguard.Proc) string {
	switch {
	case u.Type != "forking":
		return fmt.Sprintf("unit %s is Type=%s: systemd follows a new master through the PID file of a forking service only", u.Name, u.Type)
	case u.MainPID != old.PID:
		return fmt.Sprintf("master %d is not unit %s's main process (MainPID %d)", old.PID, u.Name, u.MainPID)
	}
	if argv := u.inUnitArgv(root, []string{"true"}); argv[0] == "nsenter" {
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

// setPIDFile makes systemd read the unit's main PID from path when its
// main process exits (PIDFile=). A unit that names no file (Debian's
// apache2.service) gets the runtime drop-in pidFileDropInPath, and systemd
// reloads its units; added says so. A unit naming another file is left
// alone: an error.
func (u *Unit) setPIDFile(ctx context.Context, path string, log zerolog.Logger) (added bool, err error) {
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
		err = u.refresh(ctx)
	}
	if err == nil && !samePath(u.PIDFile, path) {
		err = fmt.Errorf("unit %s reads PIDFile=%q even with %s", u.Name, u.PIDFile, file)
	}
	if err != nil {
		return false, errors.Join(err, u.unsetPIDFile(ctx, log))
	}
	return true, nil
}

// unsetPIDFile removes the drop-in setPIDFile wrote, and has systemd
// reload its units: a running service keeps its MainPID.
func (u *Unit) unsetPIDFile(ctx context.Context, log zerolog.Logger) error {
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

// inUnitArgv wraps argv so that it runs in the mount namespace of the
// unit's main process, when that is not safe-restart's (PrivateTmp= and
// the like), through nsenter(1).
func (u *Unit) inUnitArgv(root string, argv []string) []string {
	ns := filepath.Join(root, strconv.Itoa(u.MainPID), "ns", "mnt")
	ours, err1 := os.Stat(filepath.Join(root, "self", "ns", "mnt"))
	theirs, err2 := os.Stat(ns)
	if u.MainPID <= 0 || err1 != nil || err2 != nil || os.SameFile(ours, theirs) {
		return argv
	}
	return append([]string{"nsenter", "--mount=" + ns, "--"}, argv...)
}
