package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/sock"
)

func init() {
	profiles["nginx"] = Profile{Name: "nginx", Kind: "nginx", Binary: "/usr/sbin/nginx", Conf: "/etc/nginx/nginx.conf", Unit: "nginx.service", Driver: nginxKind{}}
}

// NginxLadder is nginx's stop ladder: QUIT asks for a graceful stop (the
// master closes its listeners, workers finish their requests) for
// graceful, then TERM, nginx's fast stop (the master TERMs its workers and
// KILLs those still alive after about a second), for 10 s, then KILL to
// every survivor: workers of a master that was killed meanwhile. A graceful
// of 0 skips the QUIT step.
func NginxLadder(graceful time.Duration) proc.Ladder {
	return proc.GracefulLadder(syscall.SIGQUIT, graceful)
}

// nginxKind is nginx (Debian 12: 1.22.1). nginx creates no SysV IPC
// (REFERENCE.md §5). Its master keeps its pid across a reload (HUP): it
// reads the configuration again and, when it loads, starts new workers and
// tells the old ones to finish; when it does not, it logs [emerg] and
// keeps the old configuration and workers.
type nginxKind struct{}

// RunConfig runs `nginx -T -q -c CONF` (the config test, which also dumps
// every file it read) and `nginx -V` (the compiled-in defaults), and reads
// pid, error_log, user and listen from the dump.
func (nginxKind) RunConfig(ctx context.Context, p Profile, conf string) (RunConfig, error) {
	argv := []string{p.Binary, "-T", "-q", "-c", conf}
	began := time.Now()
	dump, warnOut, elapsed, err := configTest(ctx, p.Name, argv, nil)
	if err != nil {
		return RunConfig{}, err
	}
	_, build, _, err := configTest(ctx, p.Name, []string{p.Binary, "-V"}, nil)
	if err != nil {
		return RunConfig{}, err
	}
	rc, err := nginxRunConfig(dump, build, os.Geteuid())
	if err != nil {
		return RunConfig{}, fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	for _, line := range strings.Split(warnOut, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			rc.Warnings = append(rc.Warnings, "config test: "+line)
		}
	}
	rc.Elapsed = elapsed
	w, err := clearTestPidfile(proc.DefaultRoot, rc.PidFile, p.Binary, began)
	if err != nil {
		return RunConfig{}, err
	}
	if w != "" {
		rc.Warnings = append(rc.Warnings, w)
	}
	return rc, nil
}

// clearTestPidfile removes the empty pidfile nginx's config test leaves:
// when none exists, `nginx -t` creates it (and writes no pid), which would
// read as a malformed pidfile. It removes one created since began (by this
// test) silently, and one older than pidfileSlack (left by someone's
// `nginx -t`: a master writes its pid as it creates the file) with a
// warning. An empty file of another age, or while a process running exe
// started since shortly before began (a master started meanwhile, outside
// safe-restart's lock, truncates its pidfile before writing its pid), may
// be a master writing it: kept.
func clearTestPidfile(procRoot, path, exe string, began time.Time) (string, error) {
	fi, err := os.Stat(path)
	if err != nil || fi.Size() != 0 || !fi.Mode().IsRegular() {
		return "", nil
	}
	ours := !fi.ModTime().Before(began.Add(-time.Second))
	if !ours && time.Since(fi.ModTime()) < proc.PIDFileSlack {
		return "", nil
	}
	procs, err := ipcguard.ReadProcTable(procRoot)
	if err != nil {
		return "", err
	}
	for _, p := range proc.RunningExactly(procs, exe) {
		if !p.Start.Before(fi.ModTime().Add(-proc.PIDFileSlack)) {
			return "", nil // it may be writing its pid into this file now
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("remove the empty pidfile a config test left: %w", err)
	}
	if ours {
		return "", nil
	}
	return fmt.Sprintf("removed the empty pidfile %s that an earlier config test left (`nginx -t` creates one when nginx is not running)", path), nil
}

// nginxRunConfig reads what nginx will use from a `nginx -T` dump and the
// `nginx -V` report, for a master started with effective uid euid.
func nginxRunConfig(dump, buildOut string, euid int) (RunConfig, error) {
	build, err := parseBuild(buildOut)
	if err != nil {
		return RunConfig{}, err
	}
	files, err := splitDump(dump)
	if err != nil {
		return RunConfig{}, err
	}
	main, err := mainDirectives(files)
	if err != nil {
		return RunConfig{}, err
	}
	rc := RunConfig{ServerRoot: build.Prefix, PidFile: build.PidPath}
	var logs []string
	var userArgs []string
	for _, d := range main {
		switch {
		case d.Name == "pid" && len(d.Args) == 1:
			rc.PidFile = d.Args[0]
		case d.Name == "error_log" && len(d.Args) >= 1:
			logs = append(logs, d.Args[0])
		case d.Name == "user" && (len(d.Args) == 1 || len(d.Args) == 2):
			userArgs = d.Args
		case d.Name == "worker_shutdown_timeout" && len(d.Args) == 1:
			if t, err := nginxTime(d.Args[0]); err == nil && t > 0 {
				rc.DrainBound, rc.DrainSetting = t, "nginx worker_shutdown_timeout"
			}
		case (d.Name == "daemon" || d.Name == "master_process") && len(d.Args) == 1 && d.Args[0] == "off" && rc.Foreground == "":
			rc.Foreground = fmt.Sprintf("%s line %d says %q", files[0].Path, d.Line, d.Name+" off")
		}
	}
	rc.PidFile = nginxPath(build.Prefix, rc.PidFile)
	rc.ErrorLog, rc.Warnings = mainErrorLog(build, logs)
	if rc.User, rc.Group, err = nginxAccounts(build, userArgs, euid); err != nil {
		return RunConfig{}, err
	}
	facts := dumpFacts(files)
	rc.Listen, rc.TLSFiles, rc.Warnings = facts.listen, facts.tls, append(rc.Warnings, facts.warnings...)
	for _, f := range files {
		rc.Files = append(rc.Files, f.Path)
	}
	return rc, nil
}

// nginxUnits are the units of an nginx time (ngx_parse_time), longest
// first where one is a prefix of another.
var nginxUnits = []struct {
	unit string
	d    time.Duration
}{{"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour},
	{"d", 24 * time.Hour}, {"w", 7 * 24 * time.Hour}, {"M", 30 * 24 * time.Hour}, {"y", 365 * 24 * time.Hour}}

// nginxTime parses an nginx time as ngx_parse_time does: numbers each
// followed by a unit (ms, s, m, h, d, w, M, y), with spaces between, or one
// bare number of seconds ("30", "500ms", "1h 30m").
func nginxTime(v string) (time.Duration, error) {
	if n, err := strconv.Atoi(v); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	var total time.Duration
	rest := strings.TrimSpace(v)
	if rest == "" {
		return 0, fmt.Errorf("nginx time %q: empty", v)
	}
	for rest != "" {
		i := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
		if i <= 0 {
			return 0, fmt.Errorf("nginx time %q: a number and a unit expected", v)
		}
		n, _ := strconv.Atoi(rest[:i])
		rest = rest[i:]
		found := false
		for _, u := range nginxUnits {
			if strings.HasPrefix(rest, u.unit) {
				total += time.Duration(n) * u.d
				rest, found = strings.TrimSpace(rest[len(u.unit):]), true
				break
			}
		}
		if !found {
			return 0, fmt.Errorf("nginx time %q: unknown unit", v)
		}
	}
	return total, nil
}

// nginxPath resolves a path of the configuration as nginx does: relative
// to the prefix.
func nginxPath(prefix, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(prefix, p)
}

// mainErrorLog returns the file the master logs to (the first error_log of
// the main context that is a file; the compiled-in default without one),
// "syslog:..." for syslog, or "" (with a warning) when no file can be read.
func mainErrorLog(build nginxBuild, logs []string) (string, []string) {
	if len(logs) == 0 {
		logs = []string{build.ErrorLog}
	}
	for _, l := range logs {
		if l != "stderr" && !strings.HasPrefix(l, "memory:") && !strings.HasPrefix(l, "syslog:") {
			return nginxPath(build.Prefix, l), nil
		}
	}
	if strings.HasPrefix(logs[0], "syslog:") {
		return logs[0], nil
	}
	return "", []string{fmt.Sprintf("the master's error log is %q, not a file: set error_log in the main context "+
		"(a reload is then judged by its new workers and the health check alone)", logs[0])}
}

// nginxAccounts returns the user and group nginx's workers run as: those
// of the user directive when the master runs as root (the group defaults
// to the user's name), the compiled-in ones (nobody) without it, and the
// master's own user when it is not root (nginx ignores user then).
func nginxAccounts(build nginxBuild, args []string, euid int) (Account, Account, error) {
	if euid != 0 {
		u, err := user.LookupId(strconv.Itoa(euid))
		if err != nil {
			return Account{}, Account{}, fmt.Errorf("look up uid %d: %w", euid, err)
		}
		g, err := lookupGroup(u.Gid, user.LookupGroupId)
		return Account{Name: u.Username, ID: uint32(euid)}, g, err
	}
	name, group := cmp.Or(build.Options["user"], "nobody"), build.Options["group"]
	if group == "" {
		// nginx's configure picks nogroup where there is no nobody group.
		group = "nobody"
		if _, err := user.LookupGroup("nobody"); err != nil {
			group = "nogroup"
		}
	}
	if len(args) > 0 {
		name, group = args[0], args[len(args)-1]
	}
	u, err := user.Lookup(name)
	if err != nil {
		return Account{}, Account{}, fmt.Errorf("nginx user %q: %w", name, err)
	}
	id, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return Account{}, Account{}, fmt.Errorf("nginx user %q: uid %q: %w", name, u.Uid, err)
	}
	g, err := lookupGroup(group, user.LookupGroup)
	return Account{Name: name, ID: uint32(id)}, g, err
}

// lookupGroup resolves a group by name or id with lookup.
func lookupGroup(key string, lookup func(string) (*user.Group, error)) (Account, error) {
	g, err := lookup(key)
	if err != nil {
		return Account{}, fmt.Errorf("nginx group %q: %w", key, err)
	}
	id, err := strconv.ParseUint(g.Gid, 10, 32)
	if err != nil {
		return Account{}, fmt.Errorf("nginx group %q: gid %q: %w", key, g.Gid, err)
	}
	return Account{Name: g.Name, ID: uint32(id)}, nil
}

// nginxFacts are what dumpFacts reads from every file of a dump.
type nginxFacts struct {
	listen   []string // the first argument of every listen directive, "unix:" cut
	tls      []string // the files of ssl_certificate and ssl_certificate_key
	warnings []string // files whose directives could not be read
}

// dumpFacts reads the listen and TLS file directives of every file of a
// dump, in any context. nginx resolves a relative certificate path against
// the main file's directory (its conf prefix); one built from a variable
// ($ssl_server_name) or given inline ("data:") names no file and is left
// out.
func dumpFacts(files []confFile) nginxFacts {
	var out nginxFacts
	confDir := filepath.Dir(files[0].Path)
	for _, f := range files {
		ds, err := parseConf(f.Text)
		if err != nil {
			out.warnings = append(out.warnings, fmt.Sprintf("cannot read the listen directives of %s: %v", f.Path, err))
			continue
		}
		for _, d := range ds {
			switch {
			case len(d.Args) == 0:
			case d.Name == "listen":
				out.listen = append(out.listen, strings.TrimPrefix(d.Args[0], "unix:"))
			case (d.Name == "ssl_certificate" || d.Name == "ssl_certificate_key") &&
				!strings.Contains(d.Args[0], "$") && !strings.Contains(d.Args[0], ":"):
				out.tls = appendNew(out.tls, nginxPath(confDir, d.Args[0]))
			}
		}
	}
	return out
}

// appendNew appends v to s unless s holds it.
func appendNew(s []string, v string) []string {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

// StartArgv is `nginx -c CONF`: nginx daemonizes (the config says nothing
// else: RunConfig refuses daemon off), and the master writes the pidfile.
func (nginxKind) StartArgv(p Profile, conf string) []string {
	return []string{p.Binary, "-c", conf}
}

func (nginxKind) Ladder(graceful time.Duration) proc.Ladder { return NginxLadder(graceful) }

// ReloadSignal is HUP either way: nginx's reload is graceful (old workers
// finish their requests) and it has no harder one.
func (nginxKind) ReloadSignal(bool) syscall.Signal { return syscall.SIGHUP }

// Signature is nil: nginx creates no SysV IPC (REFERENCE.md §5).
func (nginxKind) Signature(Profile, RunConfig) *ipcguard.Signature { return nil }

// nginxLogLine is an error log line (`2026/11/29 04:02:13 [emerg] 4#4: msg`):
// its level, pid and message. Lines about a request carry its text in the
// message only, never at the start of a line.
var nginxLogLine = regexp.MustCompile(`^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[([a-z]+)\] (\d+)#\d+: (.*)$`)

// nginxNoRespawn is the master's alert when a new worker failed in its
// initialisation (setuid, a module): it stays without workers.
var nginxNoRespawn = regexp.MustCompile(`^worker process \d+ exited with fatal code \d+ and cannot be respawned`)

// Fatal: an [emerg] line (nginx exits on any at start; the one a master
// logs when a reload fails means it kept its old configuration, which
// reloaded reports first), in the log or in the starter's output (`nginx:
// [emerg] ...`), but for a bind it will try again, and a worker that
// cannot be respawned.
func (nginxKind) Fatal(line string) bool {
	line = strings.TrimSpace(line)
	if msg, ok := strings.CutPrefix(line, "nginx: [emerg] "); ok {
		return !bindRetry.MatchString(msg)
	}
	m := nginxLogLine.FindStringSubmatch(line)
	return m != nil && (m[1] == "emerg" && !bindRetry.MatchString(m[3]) || m[1] == "alert" && nginxNoRespawn.MatchString(m[3]))
}

// bindRetry is an [emerg] nginx logs before it tries again: a listen
// address in use (EADDRINUSE); after five tries it logs "still could not
// bind()".
var bindRetry = regexp.MustCompile(`^bind\(\) to .* failed \(98: `)

// Reloaded: nginx logs nothing at its default level when a reload
// succeeds, so the old master is returned at once and the new workers
// under it prove the new generation; the master's [emerg] lines since the
// signal (other than a bind it will try again) mean it rejected the new
// configuration and kept the old one.
func (nginxKind) Reloaded(logged string, old ipcguard.Proc) (int, error) {
	var emerg []string
	final := false
	for _, line := range strings.Split(logged, "\n") {
		m := nginxLogLine.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil || m[1] != "emerg" || m[2] != strconv.Itoa(old.PID) {
			continue
		}
		emerg = append(emerg, m[3])
		final = final || !bindRetry.MatchString(m[3])
	}
	switch {
	case final:
		return 0, fmt.Errorf("%w: nginx master %d: %s", ErrReloadRejected, old.PID, firstAndLast(emerg))
	case len(emerg) > 0:
		return 0, nil // binding again: the verdict comes with its next lines
	}
	return old.PID, nil
}

func firstAndLast(msgs []string) string {
	if len(msgs) == 1 {
		return msgs[0]
	}
	return msgs[0] + " ... " + msgs[len(msgs)-1]
}

func (nginxKind) Reexecs() bool    { return false }
func (nginxKind) SpeaksHTTP() bool { return true }

// ReloadsLogged counts the master's "reconfiguring" notices, one per HUP it
// handled; -1 when the log holds no notice of that master (the default
// level, error, logs none).
func (nginxKind) ReloadsLogged(log string, master ipcguard.Proc) int {
	pid := strconv.Itoa(master.PID)
	n, notices := 0, 0
	for _, line := range strings.Split(log, "\n") {
		m := nginxLogLine.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil || m[1] != "notice" || m[2] != pid {
			continue
		}
		notices++
		if m[3] == "reconfiguring" {
			n++
		}
	}
	if notices == 0 {
		return -1
	}
	return n
}

// ClearLeftovers removes the unix sockets of nginx's listen directives
// that a killed master left: nginx unlinks them only on a clean exit, and
// binding one fails with EADDRINUSE while the file exists.
func (nginxKind) ClearLeftovers(_ context.Context, rc RunConfig, log zerolog.Logger) ([]string, error) {
	return sock.RemoveStaleSockets(rc.UnixListen(), log)
}

// InheritEnv is NGINX="3;4;...": each fd terminated by ";" (an
// unterminated last one is ignored), each made non-blocking (nginx never
// sets O_NONBLOCK on an inherited socket; its own are already).
func (nginxKind) InheritEnv(socks []sock.Held) ([]string, error) {
	var b strings.Builder
	for i, s := range socks {
		if err := syscall.SetNonblock(s.FD(), true); err != nil {
			return nil, fmt.Errorf("listener %s: set O_NONBLOCK: %w", s.Addr, err)
		}
		fmt.Fprintf(&b, "%d;", 3+i)
	}
	return []string{"NGINX=" + b.String()}, nil
}

// StaysChild: with inherited sockets nginx does not daemonize.
func (nginxKind) StaysChild() bool { return true }

func (nginxKind) InheritVars() []string { return []string{"NGINX"} }

func (nginxKind) UpgradeSignal() syscall.Signal { return syscall.SIGUSR2 }

func (nginxKind) UpgradedPIDFile(pidFile string) string { return pidFile + proc.OldbinSuffix }

// StartedConf reads the -c FILE of nginx's master title ("nginx: master
// process /usr/sbin/nginx -c /etc/nginx/nginx.conf"): an absolute FILE,
// since a relative one is under a prefix the title may not name.
func (nginxKind) StartedConf(argv []string) (string, bool) {
	f := strings.Fields(strings.Join(argv, " "))
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "-c" && filepath.IsAbs(f[i+1]) {
			return f[i+1], true
		}
	}
	return "", false
}

// nginx's driver and the capabilities it has.
var (
	_ Driver       = nginxKind{}
	_ Inheritor    = nginxKind{}
	_ Upgrader     = nginxKind{}
	_ ConfReporter = nginxKind{}
	_ Drainer      = nginxKind{}
)
