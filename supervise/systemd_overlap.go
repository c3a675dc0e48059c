package supervise

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/ipcguard"
)

// unitOverlap is a restart of the unit's own master with no moment
// without a listener (see replaceBeside): the new master starts beside
// the old one, in the unit's control group and the old master's mount
// namespace (PrivateTmp=), and when the old master exits, systemd takes
// the new one for the unit's main process from the unit's PID file
// (service.c: a forking service may move to a new PID if it updates its
// PID file before the old one exits, which the old master's stop
// ensures). A unit without PIDFile= is given one first (ensurePIDFile).
// It reports handled false, having changed nothing of the server, when
// no overlap can work here: the caller then runs the unit's restart job.
func unitOverlap(ctx context.Context, s StopOptions, st StartOptions, sig *ipcguard.Signature, rc RunConfig) (RestartReport, bool, error) {
	if _, ok := st.Profile.kind.(overlapper); !ok || st.NoOverlap || !st.reuseport {
		return RestartReport{}, false, nil
	}
	if err := st.unit.ensurePIDFile(ctx, rc.PidFile, st.Log); err != nil {
		st.Log.Warn().Err(err).Str("unit", st.unit.Name).Msg("cannot give the unit a PID file, so systemd could not follow a new master: no overlap")
		return RestartReport{OverlapSkipped: err.Error()}, false, nil
	}
	st.intoUnit = true
	s.unit = nil // the old master's stop never queues a stop of the unit: the new master is in it
	rep, handled, err := overlapRestart(ctx, s, st, sig, rc)
	if !handled || err != nil {
		return rep, handled, err
	}
	root := or(st.ProcRoot, "/proc")
	master := *rep.Start.Master
	return rep, true, st.unit.checkServes(ctx, root, master, st.tree(root, master))
}

// pidFileDropIn names the runtime drop-in that gives a unit its PID file.
const pidFileDropIn = "safe-restart-pidfile.conf"

// ensurePIDFile makes systemd read the unit's main PID from path when its
// main process exits (PIDFile=). A unit that names no file, or another
// (Debian's apache2.service names none), gets a runtime drop-in
// (/run/systemd/system/UNIT.d/safe-restart-pidfile.conf, gone at the next
// boot), and systemd reloads its units. The server's own start writes
// that file, so the unit's start and stop work as before.
func (u *Unit) ensurePIDFile(ctx context.Context, path string, log zerolog.Logger) error {
	if u.PIDFile != "" && samePath(u.PIDFile, path) {
		return nil
	}
	file := filepath.Join("/run/systemd/system", u.Name+".d", pidFileDropIn)
	text := "# Written by safe-restart: systemd follows a new master of " + u.Name + " that a restart\n" +
		"# started beside the old one through this file. Gone at the next boot.\n[Service]\nPIDFile=" + path + "\n"
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	if err := writeAtomic(file, []byte(text), 0o644); err != nil {
		return err
	}
	log.Info().Str("unit", u.Name).Str("path", file).Str("pid_file", path).Msg("gave the unit a PID file; systemctl daemon-reload")
	if out, err := u.run(ctx, "daemon-reload"); err != nil {
		return fmt.Errorf("systemctl daemon-reload: %w: %s", err, strings.TrimSpace(out))
	}
	if err := u.refresh(ctx); err != nil {
		return err
	}
	if !samePath(u.PIDFile, path) {
		return fmt.Errorf("unit %s reads PIDFile=%q even with %s", u.Name, u.PIDFile, file)
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
