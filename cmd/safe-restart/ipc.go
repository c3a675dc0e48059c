package main

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise"
)

func newIPCCmd(d *deps) *cobra.Command {
	c := &cobra.Command{
		Use:   "ipc",
		Short: "Inventory, diff and safely reap SysV and POSIX IPC objects",
		Long: `Every SysV semaphore set, shared memory segment and message queue, and every
POSIX object in /dev/shm, gets a verdict with its proof:

  orphan   proven left behind by a dead generation of the service: safe to remove
  live     proven in use
  foreign  not the service's: never touched
  unknown  neither could be proven: kept, with what would settle it

A semaphore set is an orphan only when it matches the service's signature,
nobody waits on it, no semaphore's last-operation pid is a live process that
started before that operation, and no live process of the service can hold it
(a live master may use sets created up to --lineage-window before it started).
It is checked again, unchanged, right before removal.`,
	}
	c.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usagef("see safe-restart ipc --help", "unknown command %q for %q", args[0], cmd.CommandPath())
		}
		return nil
	}
	c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	c.AddCommand(newIPCLsCmd(d), newIPCReapCmd(d), newIPCDiffCmd(d))
	return c
}

// sigFlags are the flags that name a service's IPC signature.
type sigFlags struct {
	service, conf    string
	owner, creator   string
	key, mode, exe   string
	nsems            string
	kinds, posixGlob string
	window           time.Duration
	stateDir         string
}

func (f *sigFlags) register(c *cobra.Command) {
	fl := c.Flags()
	fl.StringVar(&f.service, "service", "", "judge by this service's signature: apache2 or httpd (User is read from the server's config)")
	fl.StringVar(&f.conf, "conf", "", "the server's main config file (default: the distribution's)")
	fl.StringVar(&f.owner, "owner", "", "owner user (name or uid) of the service's objects")
	fl.StringVar(&f.creator, "creator", "", "creator user (name or uid) of the service's objects")
	fl.StringVar(&f.key, "key", "", "IPC key: private or 0xHEX (default any; apache2: private)")
	fl.StringVar(&f.mode, "mode", "", "permission bits in octal, e.g. 0600 (default any)")
	fl.StringVar(&f.nsems, "nsems", "", "semaphores per set (default any; apache2: 1)")
	fl.StringVar(&f.exe, "exe", "", "the service's executable; its live processes may hold its objects")
	fl.StringVar(&f.kinds, "kind", "", "kinds the service creates: sem,shm,msg,posix (default sem)")
	fl.StringVar(&f.posixGlob, "posix-glob", "", "glob of the service's /dev/shm names (with --kind posix)")
	fl.DurationVar(&f.window, "lineage-window", 0, "keep sets created this long before a live master started (default: max(10s, 5x the config test); 0 is allowed)")
	fl.StringVar(&f.stateDir, "state-dir", "/run/safe-restart", "where safe-restart records the sets of the masters it started")
}

// given reports whether any signature flag was set.
func (f *sigFlags) given() bool {
	return f.service != "" || f.owner != "" || f.creator != "" || f.key != "" || f.mode != "" ||
		f.exe != "" || f.nsems != "" || f.kinds != "" || f.posixGlob != ""
}

// options builds the inspection options: the service's signature (asking
// the server for its User), overridden by explicit flags.
func (f *sigFlags) options(c *cobra.Command, d *deps) (ipcguard.InspectOptions, error) {
	o := ipcguard.InspectOptions{Window: f.window, LineageDir: f.stateDir + "/lineage"}
	windowSet := c.Flags().Changed("lineage-window")
	if f.window < 0 {
		return o, usagef("give a duration of 0 or more, e.g. 30s", "bad --lineage-window %s", f.window)
	}
	if !f.given() {
		return o, nil
	}
	if err := f.checkCustom(); err != nil {
		return o, err
	}
	sig := ipcguard.Signature{Service: "custom", Kinds: []ipcguard.Kind{ipcguard.KindSem},
		Key: ipcguard.Any, NSems: ipcguard.Any, Mode: ipcguard.Any, UID: ipcguard.Any, CUID: ipcguard.Any}
	if f.service != "" {
		p, err := supervise.LookupProfile(f.service)
		if err != nil {
			return o, err
		}
		s, rc, err := supervise.IPCSignature(c.Context(), p, f.conf)
		if err != nil {
			return o, err
		}
		d.log.Debug().Str("server", p.Name).Str("user", rc.User.Name).Dur("config_test", rc.Elapsed).Msg("read run config")
		sig = s
		if !windowSet {
			o.Window = supervise.LineageWindow(rc.Elapsed)
		}
	}
	if err := f.override(&sig); err != nil {
		return o, err
	}
	if !windowSet && f.service == "" {
		o.Window = supervise.MinLineageWindow
	}
	if err := checkExe(sig.Exe); err != nil {
		return o, err
	}
	o.Signature = &sig
	return o, nil
}

// checkCustom insists that a signature without --service names at least
// the owner, the key and the executable: with any of them left open it
// would claim other software's sets (PostgreSQL's, php's sysvsem).
func (f *sigFlags) checkCustom() error {
	if f.service != "" {
		return nil
	}
	if f.owner == "" || f.key == "" || f.exe == "" {
		return usagef("give --owner USER --key private|0xHEX --exe PATH (and --nsems, --creator, --mode where known), or --service apache2",
			"a signature needs at least --owner, --key and --exe")
	}
	return nil
}

// checkExe refuses an executable that cannot be the server's: a relative
// or missing path would match no live process, and every set of the
// running server would look unheld.
func checkExe(exe string) error {
	if !filepath.IsAbs(exe) {
		return usagef("give the absolute path of the server binary, e.g. /usr/sbin/apache2", "--exe %q is not an absolute path", exe)
	}
	fi, err := os.Stat(exe)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return usagef("give the path of the server binary itself (not a wrapper script or a link to nothing)", "--exe %q is not an executable file", exe)
	}
	return nil
}

// inspect resolves the signature (which may run the server's config test)
// while it takes the IPC snapshot, then assesses the snapshot. The process
// table is read only after both, so a config-test process is never taken
// for a live server process.
func (f *sigFlags) inspect(c *cobra.Command, d *deps) (ipcguard.Report, ipcguard.InspectOptions, error) {
	type resolved struct {
		o   ipcguard.InspectOptions
		err error
	}
	start := time.Now()
	ch := make(chan resolved, 1)
	go func() {
		o, err := f.options(c, d)
		ch <- resolved{o, err}
	}()
	snap, snapErr := ipcguard.Take(c.Context(), ipcguard.Source{})
	took := time.Since(start)
	res := <-ch
	if res.err != nil {
		return ipcguard.Report{}, res.o, res.err
	}
	if snapErr != nil {
		return ipcguard.Report{}, res.o, snapErr
	}
	r, err := ipcguard.Assess(c.Context(), snap, res.o)
	if err == nil {
		if sig := res.o.Signature; sig != nil {
			d.log.Info().Str("signature", sig.String()).Dur("lineage_window", res.o.Window).Msg("judging by signature")
		}
		counts := r.Count()
		d.log.Info().Int("objects", len(r.Judgements)).Int("orphan", counts[ipcguard.Orphan]).Int("live", counts[ipcguard.Live]).
			Int("unknown", counts[ipcguard.Unknown]).Int("foreign", counts[ipcguard.Foreign]).
			Dur("snapshot", took).Dur("took", time.Since(start)).Msg("judged IPC objects")
	}
	return r, res.o, err
}

// override applies the explicit signature flags on top of sig.
func (f *sigFlags) override(sig *ipcguard.Signature) error {
	var err error
	set := func(s string, parse func(string) (int64, error), dst *int64) {
		if s != "" && err == nil {
			*dst, err = parse(s)
		}
	}
	set(f.owner, parseUser, &sig.UID)
	set(f.creator, parseUser, &sig.CUID)
	set(f.key, parseKey, &sig.Key)
	set(f.mode, parseMode, &sig.Mode)
	nsems := int64(sig.NSems)
	set(f.nsems, parseNSems, &nsems)
	if err != nil {
		return err
	}
	sig.NSems = int(nsems)
	if f.exe != "" {
		sig.Exe = f.exe
	}
	if f.posixGlob != "" {
		sig.PosixGlob = f.posixGlob
	}
	if f.kinds != "" {
		if sig.Kinds, err = parseKinds(f.kinds); err != nil {
			return err
		}
	}
	return nil
}

func parseUser(s string) (int64, error) {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return int64(n), nil
	}
	u, err := user.Lookup(s)
	if err != nil {
		return 0, usagef("give a user name or a numeric uid", "unknown user %q", s)
	}
	n, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("user %q has a non-numeric uid %q", s, u.Uid)
	}
	return int64(n), nil
}

func parseKey(s string) (int64, error) {
	if s == "private" || s == "0" {
		return 0, nil
	}
	if hex, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
		if n, err := strconv.ParseUint(hex, 16, 32); err == nil {
			return int64(int32(uint32(n))), nil
		}
	}
	return 0, usagef("use private or a hex key such as 0x0001e240", "bad --key %q", s)
}

func parseNSems(s string) (int64, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, usagef("give a positive number of semaphores", "bad --nsems %q", s)
	}
	return int64(n), nil
}

func parseMode(s string) (int64, error) {
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n > 0o777 {
		return 0, usagef("use octal permission bits such as 0600", "bad --mode %q", s)
	}
	return int64(n), nil
}

func parseKinds(s string) ([]ipcguard.Kind, error) {
	var out []ipcguard.Kind
	for _, k := range strings.Split(s, ",") {
		switch kk := ipcguard.Kind(strings.TrimSpace(k)); kk {
		case ipcguard.KindSem, ipcguard.KindShm, ipcguard.KindMsg, ipcguard.KindPosix:
			out = append(out, kk)
		default:
			return nil, usagef("use sem, shm, msg or posix, comma separated", "bad --kind %q", k)
		}
	}
	return out, nil
}
