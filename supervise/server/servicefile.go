package server

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
)

// DefaultServiceDir is where a service name with no built-in profile is
// looked up as NAME.toml.
const DefaultServiceDir = "/etc/safe-restart"

// serviceFile is the TOML a service file holds. Every key is documented in
// LoadServiceFile and examples/service/myapp.toml.
type serviceFile struct {
	Name       string   `toml:"name"`
	Binary     string   `toml:"binary"`
	Start      []string `toml:"start"`
	Conf       string   `toml:"conf"`
	PidFile    string   `toml:"pidfile"`
	ConfigTest []string `toml:"config_test"`
	ErrorLog   string   `toml:"error_log"`
	User       string   `toml:"user"`
	Reexecs    bool     `toml:"reexecs"`
	Workers    bool     `toml:"workers"`
	Signals    struct {
		Reload     string `toml:"reload"`
		HardReload string `toml:"hard_reload"`
	} `toml:"signals"`
	Stop struct {
		Graceful string `toml:"graceful"`
		Ladder   string `toml:"ladder"`
	} `toml:"stop"`
	Health struct {
		URL  string `toml:"url"`
		HTTP bool   `toml:"http"`
	} `toml:"health"`
	Hooks struct {
		PreStop   string `toml:"pre_stop"`
		PostStart string `toml:"post_start"`
		Timeout   string `toml:"timeout"`
	} `toml:"hooks"`
	Log struct {
		Fatal    []string `toml:"fatal"`
		Reloaded string   `toml:"reloaded"`
		Rejected string   `toml:"rejected"`
	} `toml:"log"`
	IPC *struct {
		Owner     string   `toml:"owner"`
		Creator   string   `toml:"creator"`
		Key       any      `toml:"key"` // "private", "0x...", or an integer
		NSems     int64    `toml:"nsems"`
		Mode      string   `toml:"mode"`
		Exe       string   `toml:"exe"`
		Kinds     []string `toml:"kinds"`
		PosixGlob string   `toml:"posix_glob"`
	} `toml:"ipc"`
}

// Defaults of a service file.
const (
	defaultReloadSignal = "HUP"
	defaultStopLadder   = "TERM:10s,KILL:5s:all"
)

// ValidName is a service name usable in lock, lineage and stop-record file
// names: at most 64 characters.
var ValidName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$`)

// LoadServiceFile reads a service file: the description of a daemon that
// has no built-in profile, in TOML. It returns a Profile of Kind "service"
// that every command (start, stop, restart, reload, status, ipc) drives
// like a built-in one. Unknown keys are an error, and so is every value
// that cannot be used: each error wraps ErrServiceFile and names the file,
// the key and the problem. Nothing is run or changed while loading.
//
// The keys (examples/service/myapp.toml is a commented example):
//
//	name        service name for locks, lineages and logs, at most 64
//	            letters, digits and . _ @ - (default: the file name
//	            without .toml)
//	binary      the daemon's executable, absolute (required): its master
//	            must run it, so a pidfile naming anything else is refused
//	start       argv that starts the daemon detached: it writes pidfile
//	            and returns (required; argv[0] absolute)
//	conf        the default for --conf; "{conf}" in start and config_test
//	            is replaced by --conf or this (required when used)
//	pidfile     absolute path of the pidfile the daemon writes, not
//	            under /proc, /sys or /dev (required)
//	config_test argv that exits 0 when the configuration is good
//	            (optional; without it a bad config is found only when the
//	            start or reload fails)
//	error_log   absolute path of the log read for [log] lines (optional)
//	user        the user its workers run as, a name or uid (optional)
//	Reexecs     true when a reload replaces the master process; the new
//	            master is found through the pidfile (default false)
//	workers     true when the master forks workers running binary, which a
//	            reload replaces: new workers are then part of its proof
//	            (default false)
//	[signals]   reload = "HUP" (default), hard_reload (default: reload);
//	            names like HUP, SIGHUP or numbers: HUP, USR1, USR2, WINCH
//	            or a real-time signal (any other reloads no daemon)
//	[stop]      graceful: the graceful-stop signal, given --graceful-timeout
//	            (default: none); ladder: the steps after it as
//	            SIGNAL:WAIT[:all] (default "TERM:10s,KILL:5s:all"); no
//	            signal that freezes a process (STOP, TSTP, TTIN, TTOU) or
//	            ends none (CONT, CHLD, URG). A key given empty is refused.
//	[health]    url: GET it, an answer below 500 proves the daemon serves
//	            (default: connect to every listener of the master);
//	            http = true: GET / on the first listener when there is no
//	            url (default false)
//	[log]       fatal: regular expressions of lines (in error_log or the
//	            start's output) that mean the daemon died or will die;
//	            reloaded: a line that proves a reload finished (with a
//	            named group "pid", only lines naming the master count);
//	            rejected: a line saying the daemon refused the new
//	            configuration and kept the old one
//	[ipc]       the SysV IPC objects the daemon leaves when killed, as
//	            `safe-restart ipc --owner/--creator/--key/--mode/--nsems/
//	            --exe/--kind/--posix-glob` describe them: owner and key
//	            are required, exe defaults to binary, kinds to ["sem"].
//	            Without [ipc] the daemon has no IPC to reap.
func LoadServiceFile(path string) (Profile, error) {
	var f serviceFile
	md, err := toml.DecodeFile(path, &f)
	if err != nil {
		return Profile{}, fmt.Errorf("%w %s: %w", ErrServiceFile, path, err)
	}
	if extra := md.Undecoded(); len(extra) > 0 {
		keys := make([]string, len(extra))
		for i, k := range extra {
			keys[i] = k.String()
		}
		return Profile{}, fmt.Errorf("%w %s: unknown key(s) %s", ErrServiceFile, path, strings.Join(keys, ", "))
	}
	p, err := f.profile(path, md)
	if err != nil {
		return Profile{}, fmt.Errorf("%w %s: %w", ErrServiceFile, path, err)
	}
	return p, nil
}

// ResolveService returns the profile of service: a service file when it
// names one (it contains a "/" or ends in ".toml"), else the built-in
// profile of that name, else the service file dir/NAME.toml.
func ResolveService(service, dir string) (Profile, error) {
	if strings.Contains(service, "/") || strings.HasSuffix(service, ".toml") {
		return LoadServiceFile(service)
	}
	p, err := LookupProfile(service)
	if !errors.Is(err, ErrUnknownService) || !ValidName.MatchString(service) {
		return p, err
	}
	path := filepath.Join(cmp.Or(dir, DefaultServiceDir), service+".toml")
	if _, serr := os.Stat(path); errors.Is(serr, fs.ErrNotExist) {
		return p, fmt.Errorf("%w; no service file %s either", err, path)
	}
	return LoadServiceFile(path)
}

// profile checks every key and builds the profile.
func (f *serviceFile) profile(path string, md toml.MetaData) (Profile, error) {
	name := cmp.Or(f.Name, strings.TrimSuffix(filepath.Base(path), ".toml"))
	if !ValidName.MatchString(name) {
		return Profile{}, fmt.Errorf("name %q: use letters, digits and . _ @ - (it names lock and state files)", name)
	}
	k := &serviceKind{pidFile: f.PidFile, errorLog: f.ErrorLog, reexec: f.Reexecs, workers: f.Workers, http: f.Health.HTTP}
	p := Profile{Name: name, Kind: "service", Binary: f.Binary, Conf: f.Conf, HealthURL: f.Health.URL, Driver: k}
	for _, check := range []func() error{
		func() error { return checkExeKey("binary", f.Binary) },
		func() error { return f.checkCommands(k) },
		func() error { return checkPIDFilePath(f.PidFile) },
		func() error { return checkAbs("error_log", f.ErrorLog, false) },
		func() error { return checkAbs("conf", f.Conf, false) },
		func() error { return checkHealthURL(f.Health.URL) },
		func() error { return f.setUser(k) },
		func() error { return f.setSignals(k, md) },
		func() error { return f.setLog(k) },
		func() error { return f.setIPC(k, name, md) },
		func() error { return f.setHooks(&p) },
	} {
		if err := check(); err != nil {
			return Profile{}, err
		}
	}
	k.warnings = f.warnings()
	return p, nil
}

// setHooks reads [hooks]: pre_stop and post_start are shell commands,
// timeout a Go duration (default 30s).
func (f *serviceFile) setHooks(p *Profile) error {
	p.Hooks = Hooks{PreStop: f.Hooks.PreStop, PostStart: f.Hooks.PostStart}
	if f.Hooks.Timeout == "" {
		return nil
	}
	t, err := time.ParseDuration(f.Hooks.Timeout)
	if err != nil || t <= 0 {
		return fmt.Errorf("hooks.timeout: %q is not a positive duration such as \"30s\"", f.Hooks.Timeout)
	}
	p.Hooks.Timeout = t
	return nil
}

// checkCommands checks start and config_test: argv[0] an absolute
// executable, and a conf for "{conf}" to stand for.
func (f *serviceFile) checkCommands(k *serviceKind) error {
	if len(f.Start) == 0 {
		return errors.New(`start: missing: give the argv that starts the daemon, e.g. ["/usr/sbin/myapp", "--config", "{conf}"]`)
	}
	for key, argv := range map[string][]string{"start": f.Start, "config_test": f.ConfigTest} {
		if len(argv) == 0 {
			continue
		}
		if err := checkExeKey(key+"[0]", argv[0]); err != nil {
			return err
		}
		if f.Conf == "" && strings.Contains(strings.Join(argv, "\x00"), confPlaceholder) {
			return fmt.Errorf("%s: uses %s but conf is not set", key, confPlaceholder)
		}
	}
	k.start, k.configTest = f.Start, f.ConfigTest
	return nil
}

// checkExeKey is ipcguard.CheckExe naming the key.
func checkExeKey(key, exe string) error {
	if exe == "" {
		return fmt.Errorf("%s: missing: give the absolute path of an executable", key)
	}
	return ipcguard.CheckExe(key, exe)
}

// checkAbs insists that a path, when given (or when required), is
// absolute: a relative one would depend on where safe-restart runs.
func checkAbs(key, path string, required bool) error {
	switch {
	case path == "" && required:
		return fmt.Errorf("%s: missing: give an absolute path", key)
	case path != "" && !filepath.IsAbs(path):
		return fmt.Errorf("bad %s %q: not an absolute path", key, path)
	}
	return nil
}

// checkPIDFilePath checks the pidfile key: an absolute path, outside the
// kernel's file systems (/proc, /sys, /dev), whose files no daemon writes.
func checkPIDFilePath(path string) error {
	if err := checkAbs("pidfile", path, true); err != nil {
		return err
	}
	clean := filepath.Clean(path)
	for _, kernel := range []string{"/proc", "/sys", "/dev"} {
		if clean == kernel || strings.HasPrefix(clean, kernel+"/") {
			return fmt.Errorf("bad pidfile %q: a file of the kernel's %s, not one a daemon writes", path, kernel)
		}
	}
	return nil
}

func checkHealthURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("health.url %q: want an http:// or https:// URL with a host", s)
	}
	return nil
}

// setUser resolves user (a name or a uid).
func (f *serviceFile) setUser(k *serviceKind) error {
	if f.User == "" {
		return nil
	}
	uid, err := ipcguard.ParseUser(f.User)
	if err != nil {
		return fmt.Errorf("user: %w", err)
	}
	k.user = Account{Name: f.User, ID: uid}
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		k.user.Name = u.Username
	}
	return nil
}

// setSignals parses [signals] and [stop]: a key given empty is refused
// (not taken for its default), and each signal must fit its use
// (checkReloadSignal, checkStopSignal).
func (f *serviceFile) setSignals(k *serviceKind, md toml.MetaData) error {
	var err error
	for _, v := range []struct{ table, key, value string }{
		{"signals", "reload", f.Signals.Reload}, {"signals", "hard_reload", f.Signals.HardReload},
		{"stop", "graceful", f.Stop.Graceful}, {"stop", "ladder", f.Stop.Ladder},
	} {
		if md.IsDefined(v.table, v.key) && strings.TrimSpace(v.value) == "" {
			return fmt.Errorf("%s.%s: empty: remove the key for the default, or give a value", v.table, v.key)
		}
	}
	if k.reload, err = proc.ParseWith(cmp.Or(f.Signals.Reload, defaultReloadSignal), proc.CheckReloadSignal); err != nil {
		return fmt.Errorf("signals.reload: %w", err)
	}
	k.hardReload = k.reload
	if f.Signals.HardReload != "" {
		if k.hardReload, err = proc.ParseWith(f.Signals.HardReload, proc.CheckReloadSignal); err != nil {
			return fmt.Errorf("signals.hard_reload: %w", err)
		}
	}
	if f.Stop.Graceful != "" {
		if k.graceful, err = proc.ParseWith(f.Stop.Graceful, proc.CheckStopSignal); err != nil {
			return fmt.Errorf("stop.graceful: %w", err)
		}
	}
	if k.rest, err = proc.ParseLadder(cmp.Or(f.Stop.Ladder, defaultStopLadder)); err != nil {
		return fmt.Errorf("stop.ladder: %w", err)
	}
	return nil
}

// setLog compiles the [log] patterns.
func (f *serviceFile) setLog(k *serviceKind) error {
	for i, expr := range f.Log.Fatal {
		re, err := regexp.Compile(expr)
		if err != nil {
			return fmt.Errorf("log.fatal[%d]: %w", i, err)
		}
		k.fatals = append(k.fatals, re)
	}
	if f.ErrorLog == "" && (f.Log.Reloaded != "" || f.Log.Rejected != "") {
		return errors.New("log.reloaded and log.rejected are read in error_log: set error_log")
	}
	var err error
	if k.reloadedRE, err = compileOptional("log.reloaded", f.Log.Reloaded); err != nil {
		return err
	}
	k.rejectedRE, err = compileOptional("log.rejected", f.Log.Rejected)
	return err
}

func compileOptional(key, expr string) (*regexp.Regexp, error) {
	if expr == "" {
		return nil, nil
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return re, nil
}

// setIPC builds the signature of [ipc], checked exactly as the flags of
// `safe-restart ipc` are.
func (f *serviceFile) setIPC(k *serviceKind, name string, md toml.MetaData) error {
	if f.IPC == nil {
		return nil
	}
	in := f.IPC
	spec := ipcguard.SigSpec{Owner: in.Owner, Creator: in.Creator, Mode: in.Mode, Exe: cmp.Or(in.Exe, f.Binary), Kinds: in.Kinds, PosixGlob: in.PosixGlob}
	if md.IsDefined("ipc", "nsems") {
		spec.NSems = strconv.FormatInt(in.NSems, 10)
	}
	switch key := in.Key.(type) {
	case nil:
	case string:
		spec.Key = key
	case int64:
		spec.Key = "0x" + strconv.FormatUint(uint64(uint32(key)), 16)
		if key == 0 {
			spec.Key = "private"
		}
		if key != int64(int32(key)) && key != int64(uint32(key)) {
			return fmt.Errorf("ipc.key %d: out of the range of an IPC key", key)
		}
	default:
		return fmt.Errorf("ipc.key: want \"private\", a hex string or an integer, got %T", in.Key)
	}
	fieldName := func(field string) string { return "ipc." + field }
	if err := spec.RequireIdentity(fieldName); err != nil {
		return err
	}
	sig := ipcguard.CustomSignature(name)
	if err := spec.Apply(&sig, fieldName); err != nil {
		return err
	}
	k.sig, k.sigExe = &sig, in.Exe != ""
	return nil
}

// warnings are the risks a file leaves open, logged at every command and
// listed by status.
func (f *serviceFile) warnings() []string {
	var w []string
	if len(f.ConfigTest) == 0 {
		w = append(w, "the service file has no config_test: a bad configuration is found only when a start or reload fails")
	}
	if f.Log.Reloaded == "" {
		w = append(w, "the service file has no log.reloaded pattern: a reload is judged only by the master staying alive and serving, not by the daemon saying it loaded the new configuration")
	}
	return w
}
