package doctor

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// cronTable is one crontab doctor reads: system tables carry a user field
// before the command.
type cronTable struct {
	glob   string // under the root
	system bool
}

// cronTables are the crontabs of Debian's cron and RHEL's cronie.
var cronTables = []cronTable{
	{glob: "etc/crontab", system: true},
	{glob: "etc/cron.d/*", system: true},
	{glob: "var/spool/cron/crontabs/*"}, // Debian
	{glob: "var/spool/cron/*"},          // RHEL (directories are skipped)
}

// cronFindings reports every crontab line under root that reloads or
// restarts a web server at a fixed time with no random delay: a fleet
// configured alike acts in the same second, and a reload that fails fails
// everywhere at once. keep, when set, keeps only the lines whose target it
// accepts.
func cronFindings(root string, keep func(target string) bool) ([]Finding, []string) {
	var ev, notes []string
	for _, t := range cronTables {
		files, _ := filepath.Glob(filepath.Join(root, t.glob))
		for _, f := range files {
			if fi, err := os.Stat(f); err != nil || !fi.Mode().IsRegular() || ignoredCronFile(filepath.Base(f)) {
				continue
			}
			lines, err := scanCronFile(f, t.system, keep)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				notes = append(notes, err.Error())
			}
			ev = append(ev, lines...)
		}
	}
	if len(ev) == 0 {
		return nil, notes
	}
	return []Finding{{Check: "cron-no-jitter", Severity: Warning,
		Summary:  fmt.Sprintf("%d cron line(s) reload or restart a web server at a fixed time with no random delay: every host configured alike acts in the same second", len(ev)),
		Evidence: ev,
		Fix: "add a random delay: `safe-restart SERVICE --jitter 30m` (examples/cron/safe-restart), or put `sleep $((RANDOM \\% 1800)) &&` before the command " +
			"(with SHELL=/bin/bash; % must be escaped in a crontab)"}}, notes
}

// ignoredCronFile reports the names cron skips in cron.d: backups and
// package manager leftovers.
func ignoredCronFile(name string) bool {
	return strings.HasPrefix(name, ".") || strings.HasSuffix(name, "~") || strings.Contains(name, ".dpkg-") ||
		strings.HasSuffix(name, ".rpmsave") || strings.HasSuffix(name, ".rpmnew") || strings.HasSuffix(name, ".swp")
}

// scanCronFile returns the evidence lines of one crontab.
func scanCronFile(path string, system bool, keep func(string) bool) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		target, ok := unjitteredReload(sc.Text(), system)
		if ok && (keep == nil || keep(target)) {
			out = append(out, fmt.Sprintf("%s:%d: %s (reloads %s)", path, n, strings.TrimSpace(sc.Text()), target))
		}
	}
	return out, sc.Err()
}

// cronEnv matches an environment line of a crontab (SHELL=/bin/bash).
var cronEnv = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*\s*=`)

// unjitteredReload reports whether one crontab line runs, on a schedule
// (anything but @reboot), a command that reloads or restarts a web server
// without a random delay, and which server it targets.
func unjitteredReload(line string, system bool) (string, bool) {
	cmd, ok := cronCommand(line, system)
	if !ok {
		return "", false
	}
	target, ok := reloadTarget(cmd)
	if !ok || hasJitter(cmd) {
		return "", false
	}
	return target, true
}

// cronCommand returns the command of a crontab entry: after the five time
// fields (or an @keyword) and, in a system table, the user; up to the
// first unescaped % (the rest is stdin), with \% unescaped.
func cronCommand(line string, system bool) (string, bool) {
	line = strings.TrimSpace(line)
	if line == "" || strings.HasPrefix(line, "#") || cronEnv.MatchString(line) {
		return "", false
	}
	skip := 5
	if strings.HasPrefix(line, "@") {
		if strings.HasPrefix(line, "@reboot") {
			return "", false // once per boot: no fleet-wide second
		}
		skip = 1
	}
	if system {
		skip++
	}
	m := regexp.MustCompile(fmt.Sprintf(`^(?:\S+[ \t]+){%d}(.*)$`, skip)).FindStringSubmatch(line)
	if m == nil {
		return "", false
	}
	rest := m[1]
	cmd := strings.TrimSpace(rest)
	for i := 0; i < len(cmd); i++ {
		if cmd[i] == '%' && (i == 0 || cmd[i-1] != '\\') {
			cmd = cmd[:i]
			break
		}
	}
	return strings.ReplaceAll(cmd, `\%`, "%"), cmd != ""
}

// reloadPatterns match the commands that reload or restart a web server;
// the first group names the target (or, when empty, a server word
// elsewhere in the command does).
var reloadPatterns = []*regexp.Regexp{
	regexp.MustCompile(`(?:^|[\s;&|(/])(apache2?ctl)\s+(?:-k\s+)?(?:graceful|restart)\b`),
	regexp.MustCompile(`(?:^|[\s;&|(/])(apache2|httpd)\s+(?:\S+\s+)*-k\s+(?:graceful|restart)\b`),
	regexp.MustCompile(`(?:^|[\s;&|(/])systemctl\s+(?:-\S+\s+)*(?:reload|restart|try-restart|reload-or-restart|try-reload-or-restart|force-reload)\s+(?:-\S+\s+)*(\S+)`),
	regexp.MustCompile(`(?:^|[\s;&|(/])(?:service|invoke-rc\.d)\s+(\S+)\s+(?:reload|restart|force-reload|graceful)\b`),
	regexp.MustCompile(`/etc/(?:rc\.d/)?init\.d/(\S+)\s+(?:reload|restart|force-reload|graceful)\b`),
	regexp.MustCompile(`(?:^|[\s;&|(/])(nginx)\s+(?:\S+\s+)*-s\s+reload\b`),
	regexp.MustCompile(`(?:^|[\s;&|(/])(?:kill|pkill|killall)\s+(?:-s\s+)?-?(?:SIG)?(?:HUP|USR1|USR2|1|10|12)\b()`),
}

// serverWord finds a web server named anywhere in a command.
var serverWord = regexp.MustCompile(`apache2?|httpd|nginx|php[\d.]*-?fpm[\d.]*`)

// reloadTarget returns the server a command reloads or restarts.
func reloadTarget(cmd string) (string, bool) {
	if t, ok := safeRestartTarget(cmd); ok {
		return t, true
	}
	for _, re := range reloadPatterns {
		m := re.FindStringSubmatch(cmd)
		if m == nil {
			continue
		}
		target := strings.TrimSuffix(m[1], ".service")
		if target == "" {
			target = serverWord.FindString(cmd)
		}
		if serverWord.MatchString(target) {
			return target, true
		}
	}
	return "", false
}

// safeRestartValueFlags are the safe-restart flags that take a separate
// value, so that the value is not taken for the service.
var safeRestartValueFlags = []string{"--conf", "--state-dir", "--service-dir", "--log-format", "--log-level", "--binary", "--jitter",
	"--max-reloads", "--status-url", "--health-url", "--timeout", "--lock-timeout", "--graceful-timeout", "--ladder"}

// safeRestartTarget returns the service of a `safe-restart SERVICE` or
// `safe-restart reload|restart SERVICE` in cmd.
func safeRestartTarget(cmd string) (string, bool) {
	i := strings.Index(cmd, "safe-restart ")
	if i < 0 || (i > 0 && !strings.ContainsAny(cmd[i-1:i], " \t;&|(/")) {
		return "", false
	}
	words := strings.Fields(cmd[i+len("safe-restart "):])
	var args []string
	for j := 0; j < len(words) && len(args) < 2; j++ {
		w := words[j]
		if strings.ContainsAny(w, ";&|>") {
			break
		}
		if strings.HasPrefix(w, "-") {
			if slices.Contains(safeRestartValueFlags, w) {
				j++
			}
			continue
		}
		args = append(args, w)
	}
	switch {
	case len(args) == 0:
		return "", false
	case args[0] == "reload" || args[0] == "restart":
		if len(args) < 2 {
			return "", false
		}
		return args[1], true
	case slices.Contains([]string{"start", "stop", "status", "doctor", "ipc", "run", "metrics", "help", "completion", "systemd", "version", "man"}, args[0]):
		return "", false
	}
	return args[0], true
}

// sleepRandom matches a random sleep before the command.
var sleepRandom = regexp.MustCompile(`sleep\b.*(?:RANDOM|shuf\b|rand|urandom|jot\s+-r)`)

// safeRestartJitter matches safe-restart's --jitter with its duration.
var safeRestartJitter = regexp.MustCompile(`--jitter(?:=|\s+)(\S+)`)

// hasJitter reports whether the command waits a random time first.
func hasJitter(cmd string) bool {
	if sleepRandom.MatchString(cmd) {
		return true
	}
	m := safeRestartJitter.FindStringSubmatch(cmd)
	if m == nil {
		return false
	}
	d, err := time.ParseDuration(m[1])
	return err == nil && d > 0
}

// serverFamily groups the names of one server: apache2, httpd and
// apache2ctl are "apache"; php8.2-fpm and php-fpm8.2 are "php-fpm".
func serverFamily(name string) string {
	n := strings.ToLower(strings.TrimSuffix(name, ".service"))
	switch {
	case strings.Contains(n, "apache") || strings.Contains(n, "httpd"):
		return "apache"
	case strings.Contains(n, "nginx"):
		return "nginx"
	case strings.Contains(n, "fpm"):
		return "php-fpm"
	}
	return n
}
