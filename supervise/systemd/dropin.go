package systemd

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/internal/atomicfile"
	"github.com/safe-restart/safe-restart/supervise/server"
)

// DropInOptions says which drop-in to write (see InstallDropIn).
type DropInOptions struct {
	Profile server.Profile
	Conf    string
	Unit    string // "" finds it (see FindUnit)
	// Exec is the safe-restart that ExecReload= runs (an absolute path).
	Exec string
	// ReloadArgs are more flags for its reload (--max-reloads 500, ...).
	ReloadArgs []string
	// Dir is the unit directory the drop-in goes to: /etc/systemd/system,
	// or /run/systemd/system for one that lasts until the next boot.
	Dir      string
	DryRun   bool // write nothing, run nothing: return the text
	ProcRoot string
	Log      zerolog.Logger
}

// DropInReport is the drop-in written (or, in a dry run, to be written).
type DropInReport struct {
	Unit    string `json:"unit"`
	Path    string `json:"path"`
	Text    string `json:"text"`
	Written bool   `json:"written"`
}

// InstallDropIn writes the drop-in that makes `systemctl reload UNIT` (and
// so logrotate's, certbot's and invoke-rc.d's reloads) a verified
// safe-restart reload, then runs systemctl daemon-reload. The config test
// runs first (a *ConfigTestError: nothing written). The unit must be
// loaded, Type=forking or notify, and its PIDFile=, if set, the server's
// pidfile.
func InstallDropIn(ctx context.Context, o DropInOptions) (DropInReport, error) {
	_, rc, err := o.Profile.Prepare(ctx, o.Conf, o.Log)
	if err != nil {
		return DropInReport{}, err
	}
	u, err := UnitOf(ctx, UnitQuery{Profile: o.Profile, Conf: o.Conf, Name: o.Unit, ProcRoot: o.ProcRoot, Log: o.Log}, rc.PidFile)
	if err != nil {
		return DropInReport{}, err
	}
	if u == nil {
		return DropInReport{}, fmt.Errorf("%w for %s: systemd is not PID 1, or it has no %s loaded (--unit names one)", ErrNoUnit, o.Profile.Name, cmp.Or(o.Unit, o.Profile.Unit))
	}
	text, err := u.dropIn(o, rc.PidFile)
	if err != nil {
		return DropInReport{}, err
	}
	rep := DropInReport{Unit: u.Name, Path: filepath.Join(o.Dir, u.Name+".d", "safe-restart.conf"), Text: text}
	if o.DryRun {
		return rep, nil
	}
	if err := os.MkdirAll(filepath.Dir(rep.Path), 0o755); err != nil {
		return rep, err
	}
	if err := atomicfile.WriteFile(rep.Path, []byte(text), 0o644); err != nil {
		return rep, err
	}
	rep.Written = true
	o.Log.Info().Str("path", rep.Path).Msg("wrote the drop-in; systemctl daemon-reload")
	if out, err := u.run(ctx, "daemon-reload"); err != nil {
		return rep, fmt.Errorf("systemctl daemon-reload: %w: %s", err, strings.TrimSpace(out))
	}
	return rep, nil
}

// dropIn renders the drop-in of u for a server whose pidfile is pidFile.
func (u *Unit) dropIn(o DropInOptions, pidFile string) (string, error) {
	if u.Type != "forking" && u.Type != "notify" {
		return "", fmt.Errorf("%w: %s is Type=%s: safe-restart manages daemons that systemd runs as Type=forking or Type=notify", server.ErrUnsupportedConfig, u.Name, u.Type)
	}
	if u.PIDFile != "" && u.PIDFile != pidFile && u.PIDFile != strings.Replace(pidFile, "/var/run/", "/run/", 1) {
		return "", fmt.Errorf("%w: %s has PIDFile=%s, but the server writes %s: make them the same first", server.ErrUnsupportedConfig, u.Name, u.PIDFile, pidFile)
	}
	words := append([]string{o.Exec, o.Conf, u.Name, pidFile}, o.ReloadArgs...)
	if !filepath.IsAbs(o.Exec) || slices.ContainsFunc(words, needsQuoting) {
		return "", fmt.Errorf("%w: ExecReload= would need quoting or specifiers: %q", server.ErrUnsupportedConfig, words)
	}
	var b strings.Builder
	fmt.Fprintf(&b, dropInHead, u.Name, o.Profile.Name, u.Name)
	fmt.Fprintf(&b, dropInPIDFile, strings.Replace(pidFile, "/var/run/", "/run/", 1))
	argv := []string{o.Exec, "reload", o.Profile.Name, "--lock-timeout", "30s"}
	if o.Unit != "" {
		argv = append(argv, "--unit", u.Name)
	}
	if o.Conf != "" {
		argv = append(argv, "--conf", o.Conf)
	}
	fmt.Fprintf(&b, dropInReload, strings.Join(append(argv, o.ReloadArgs...), " "))
	if u.Restart == "on-abort" {
		b.WriteString(dropInRestart)
	}
	return b.String(), nil
}

// needsQuoting reports whether a word of ExecReload= would need systemd's
// quoting, escaping or specifier rules (written as is, it would not be
// one word with this value).
func needsQuoting(w string) bool {
	return w == ";" || strings.ContainsAny(w, " \t\n\r\"'\\%$")
}

// The drop-in, in parts (see dropIn). Every line says why it is there.
const (
	dropInHead = `# %s.d/safe-restart.conf, written by ` + "`safe-restart systemd install %s`" + `.
# ` + "`systemctl reload %[3]s`" + ` (and so logrotate's, certbot's and invoke-rc.d's
# reloads) runs a verified safe-restart reload instead of the unit's own
# command, which exits 0 even when the reload kills the server. safe-restart
# runs it inside the unit, so a master it starts is the unit's. Remove this
# file and run ` + "`systemctl daemon-reload`" + ` to undo it.
#
# How systemd follows the master (systemd's src/core/service.c): a reload
# usually keeps it. When it must not (a master running out of pthread keys or
# semaphore sets, --max-reloads, --full), or when the reload killed the server,
# safe-restart starts a new master. While ExecReload= runs, systemd notices the
# old main process exit and waits for the command instead of stopping the
# unit; when the command succeeds, it reads PIDFile= and follows the new one.
[Service]
`
	dropInPIDFile = `# The server's own pidfile (Debian's apache2.service and php-fpm's units have
# no PIDFile=; where the unit has one, it is the same).
PIDFile=%s
`
	dropInReload = `
# The first, empty line removes the unit's own command.
ExecReload=
ExecReload=%s

# Exit 4: the reload did not keep the server up, so safe-restart stopped it
# and a verified start brought it back. Counted as success, systemd reads
# PIDFile= again and follows the new master. Exit 3 (refused: the config test
# or the trial start failed; nothing was touched) and exit 1 still fail
# ` + "`systemctl reload`" + `; a failed reload alone does not stop the unit.
SuccessExitStatus=4

# systemd kills an ExecReload= that outlasts TimeoutStartSec= (default 90s),
# perhaps in the middle of a recovery. The longest path is about 2 minutes:
# the lock (30s), the reload's verification (20s), the stop ladder (WINCH or
# QUIT 30s, TERM 10s, KILL 5s) and the start's verification (20s).
TimeoutStartSec=3min
`
	dropInRestart = `
# The one case where systemd undoes a recovery: the old master dies on its own
# during the reload (exit 1: libgomp's exit, or AH00144 then AH02818) before
# safe-restart can stop it. systemd records the failed main process and, when
# ExecReload= ends, stops the unit, including the master safe-restart just
# started. With on-failure it then starts the unit again; the unit's
# on-abort reacts only to signals. Listing 1 in SuccessExitStatus= instead
# would hide real failures of the master, of its start, and of safe-restart.
Restart=on-failure
`
)
