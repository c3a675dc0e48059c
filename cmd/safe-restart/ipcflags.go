package main

import (
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise"
	"github.com/safe-restart/safe-restart/supervise/server"
)

// sigFlags are the flags that name a service's IPC signature.
type sigFlags struct {
	service, conf    string
	serviceDir       string
	owner, creator   string
	key, mode, exe   string
	nsems            string
	kinds, posixGlob string
	window           time.Duration
	stateDir         string
}

func (f *sigFlags) register(c *cobra.Command) {
	fl := c.Flags()
	fl.StringVar(&f.service, "service", "", "judge by this service's signature: apache2 or httpd (User is read from the server's config), or a service file with an [ipc] table (nginx and php-fpm create no SysV IPC)")
	serviceDirFlag(c, &f.serviceDir)
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
	fl.StringVar(&f.stateDir, "state-dir", string(supervise.DefaultStateDir), "where safe-restart records the sets of the masters it started")
}

// given reports whether any signature flag was set.
func (f *sigFlags) given() bool {
	return f.service != "" || f.owner != "" || f.creator != "" || f.key != "" || f.mode != "" ||
		f.exe != "" || f.nsems != "" || f.kinds != "" || f.posixGlob != ""
}

// options builds the inspection options: the service's signature (asking
// the server for its User), overridden by explicit flags.
func (f *sigFlags) options(c *cobra.Command, d *deps) (ipcguard.InspectOptions, error) {
	o := ipcguard.InspectOptions{Window: f.window, LineageDir: supervise.StateDir(f.stateDir).Lineages()}
	windowSet := c.Flags().Changed("lineage-window")
	if f.window < 0 {
		return o, usagef("give a duration of 0 or more, e.g. 30s", "bad --lineage-window %s", f.window)
	}
	if !f.given() {
		return o, nil
	}
	spec := f.spec()
	if f.service == "" {
		if err := spec.RequireIdentity(flagName); err != nil {
			return o, specUsage(err)
		}
	}
	sig := ipcguard.CustomSignature("custom")
	if f.service != "" {
		p, err := server.ResolveService(f.service, f.serviceDir)
		if err != nil {
			return o, err
		}
		s, rc, err := server.IPCSignature(c.Context(), p, f.conf)
		if err != nil {
			return o, err
		}
		d.log.Debug().Str("server", p.Name).Str("user", rc.User.Name).Dur("config_test", rc.Elapsed).Msg("read run config")
		sig = s
		if !windowSet {
			o.Window = server.LineageWindow(rc.Elapsed)
		}
	}
	if err := spec.Apply(&sig, flagName); err != nil {
		return o, specUsage(err)
	}
	if !windowSet && f.service == "" {
		o.Window = server.MinLineageWindow
	}
	o.Signature = &sig
	return o, nil
}

// spec is the signature the flags give.
func (f *sigFlags) spec() ipcguard.SigSpec {
	s := ipcguard.SigSpec{Owner: f.owner, Creator: f.creator, Key: f.key, Mode: f.mode, NSems: f.nsems, Exe: f.exe, PosixGlob: f.posixGlob}
	if f.kinds != "" {
		s.Kinds = strings.Split(f.kinds, ",")
	}
	return s
}

// flagName names a signature field by its flag.
func flagName(field string) string {
	switch field {
	case "kinds":
		return "--kind"
	case "posix_glob":
		return "--posix-glob"
	}
	return "--" + field
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
