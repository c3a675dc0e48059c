package server

import (
	"fmt"
	"os/user"
	"strconv"
	"strings"
	"time"
)

// fpmDump is what `php-fpm -tt` reports: the [global] section and each
// pool, key -> value, as php-fpm resolved them (relative paths expanded
// against its prefix, durations in seconds, unset values "undefined").
type fpmDump struct {
	global map[string]string
	pools  []fpmPool
}

// fpmPool is one [pool] section of the dump.
type fpmPool struct {
	name string
	keys map[string]string
}

// parseFPMDump parses the configuration dump `php-fpm -tt` writes to
// stderr, one NOTICE line per section and key:
//
//	[29-Nov-2026 04:01:36] NOTICE: [global]
//	[29-Nov-2026 04:01:36] NOTICE: 	pid = /run/php/php8.2-fpm.pid
//	[29-Nov-2026 04:01:36] NOTICE: [www]
//	[29-Nov-2026 04:01:36] NOTICE: 	listen = /run/php/php8.2-fpm.sock
//
// (with error_log = syslog the prefix is "[NOTICE] " without a date). It
// reports false when the output holds no [global] section: php-fpm writes
// the dump at level notice, so a log_level above it silences it.
func parseFPMDump(out string) (fpmDump, bool) {
	d := fpmDump{global: map[string]string{}}
	var cur map[string]string
	for _, line := range strings.Split(out, "\n") {
		msg, ok := fpmNotice(line)
		if !ok {
			continue
		}
		if k, v, isKey := strings.Cut(msg, " = "); isKey && strings.HasPrefix(msg, "\t") {
			if cur != nil {
				cur[strings.TrimSpace(k)] = strings.TrimSpace(v)
			}
			continue
		}
		name, isSection := strings.CutPrefix(strings.TrimSpace(msg), "[")
		if !isSection || !strings.HasSuffix(name, "]") {
			continue
		}
		name = strings.TrimSuffix(name, "]")
		if name == "global" {
			cur = d.global
			continue
		}
		d.pools = append(d.pools, fpmPool{name: name, keys: map[string]string{}})
		cur = d.pools[len(d.pools)-1].keys
	}
	return d, cur != nil
}

// fpmNotice returns the message of a NOTICE line ("... NOTICE: msg" or
// "[NOTICE] msg").
func fpmNotice(line string) (string, bool) {
	for _, mark := range []string{"NOTICE: ", "[NOTICE] "} {
		if i := strings.Index(line, mark); i >= 0 {
			return line[i+len(mark):], true
		}
	}
	return "", false
}

// fpmDefined returns a dump value, "" for php-fpm's "undefined".
func fpmDefined(v string) string {
	if v == "undefined" {
		return ""
	}
	return v
}

// runConfig turns the dump into a RunConfig: pid file, error log, the
// first pool's user and group, every pool's listen address, and the risks
// (README.md invariant 5). A dump without a pid file is refused: php-fpm
// writes none then, and nothing could find or prove its master.
func (d fpmDump) runConfig() (RunConfig, error) {
	rc := RunConfig{PidFile: fpmDefined(d.global["pid"]), ErrorLog: fpmDefined(d.global["error_log"]), Mutexes: map[string]string{}}
	if rc.PidFile == "" {
		return rc, ErrNoPidFile
	}
	if len(d.pools) == 0 {
		return rc, fmt.Errorf("the configuration defines no pool")
	}
	rc.PoolMaxRequests = map[string]int{}
	for _, p := range d.pools {
		if l := fpmDefined(p.keys["listen"]); l != "" {
			rc.Listen = append(rc.Listen, l)
		}
		if n, err := strconv.Atoi(p.keys["pm.max_requests"]); err == nil {
			rc.PoolMaxRequests[p.name] = n
		}
	}
	rc.User = lookupAccount(fpmDefined(d.pools[0].keys["user"]), false)
	rc.Group = lookupAccount(fpmDefined(d.pools[0].keys["group"]), true)
	rc.Warnings = d.warnings()
	if t, err := fpmSeconds(d.global["process_control_timeout"]); err == nil && t > 0 {
		rc.DrainBound, rc.DrainSetting = t, "php-fpm process_control_timeout"
	}
	return rc, nil
}

// warnings names the settings that make a reload or a stop unsafe.
func (d fpmDump) warnings() []string {
	var out []string
	if t, err := fpmSeconds(d.global["process_control_timeout"]); err == nil && t == 0 {
		out = append(out, "php-fpm process_control_timeout = 0: every reload (USR2) and graceful stop (QUIT) "+
			"TERMs the workers right after asking them to finish, killing the requests in flight; set it to the longest request time, e.g. process_control_timeout = 30s")
	}
	if d.global["daemonize"] == "no" {
		out = append(out, "php-fpm daemonize = no: the config expects a foreground manager (systemd runs php-fpm --nodaemonize); "+
			"safe-restart start runs php-fpm --daemonize, outside that manager")
	}
	return out
}

// fpmSeconds parses a dumped duration: "10s" (php-fpm prints seconds).
func fpmSeconds(v string) (time.Duration, error) {
	n, err := strconv.Atoi(strings.TrimSuffix(v, "s"))
	if err != nil {
		return 0, fmt.Errorf("php-fpm duration %q: %w", v, err)
	}
	return time.Duration(n) * time.Second, nil
}

// lookupAccount resolves a user (or group) name to its id; an unknown name
// keeps id 0 beside the name (the config test already rejected unknown
// pool users, so that is a name this process cannot resolve).
func lookupAccount(name string, group bool) Account {
	a := Account{Name: name}
	if name == "" {
		return a
	}
	var id string
	if group {
		if g, err := user.LookupGroup(name); err == nil {
			id = g.Gid
		}
	} else if u, err := user.Lookup(name); err == nil {
		id = u.Uid
	}
	if n, err := strconv.ParseUint(id, 10, 32); err == nil {
		a.ID = uint32(n)
	}
	return a
}
