package server

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Account is a user or group as the server resolved it.
type Account struct {
	Name string `json:"name"`
	ID   uint32 `json:"id"`
}

// RunConfig is what the server's config test reports it will use (for
// Apache, `apache2 -t -D DUMP_RUN_CFG`).
type RunConfig struct {
	// Conf is the configuration file the test read.
	Conf       string            `json:"conf"`
	ServerRoot string            `json:"server_root"`
	PidFile    string            `json:"pid_file"`
	ErrorLog   string            `json:"error_log"`
	User       Account           `json:"user"`
	Group      Account           `json:"group"`
	Mutexes    map[string]string `json:"mutexes"` // mutex name ("default", "mpm-accept") -> its line
	// Listen is the configured listen addresses the server reports
	// (php-fpm's pools: host:port or a unix socket path); empty when it
	// does not report them.
	Listen []string `json:"listen,omitempty"`
	// Files are the configuration files the config test read: the main
	// file and every include, as the server names them (nginx's dump,
	// Apache's DUMP_INCLUDES, php-fpm's include lines); empty when it does
	// not say. A serving generation older than one of them does not run
	// what is on disk (see supervise/generation).
	Files []string `json:"files,omitempty"`
	// TLSFiles are the certificate and key files the configuration names,
	// absolute; a path built from a variable is left out.
	TLSFiles []string `json:"tls_files,omitempty"`
	// DrainBound is the bound the server itself puts on how long an older
	// generation may finish its requests after a reload (nginx's
	// worker_shutdown_timeout, php-fpm's process_control_timeout), and
	// DrainSetting names it; 0 when it sets none. Apache has none: its
	// GracefulShutdownTimeout bounds a graceful stop, not the old children
	// of a graceful restart.
	DrainBound   time.Duration `json:"drain_bound,omitempty"`
	DrainSetting string        `json:"drain_setting,omitempty"`
	// Warnings are risks in the configuration, logged by every command
	// (php-fpm's process_control_timeout = 0).
	Warnings []string `json:"warnings,omitempty"`
	// QuietLog says the error log does not record the server's notices
	// (php-fpm's log_level above notice): a reload's new generation is
	// judged without them, fatal lines are still read.
	QuietLog bool `json:"quiet_log,omitempty"`
	// PoolMaxRequests is php-fpm's pm.max_requests by pool (0: a worker
	// serves forever, so whatever it leaks stays); nil for other servers.
	PoolMaxRequests map[string]int `json:"pool_max_requests,omitempty"`
	// Foreground, when set, says why the server stays in the foreground
	// (nginx's "daemon off"): start, stop, reload and restart, which
	// manage a server that daemonizes, refuse it (ErrUnsupportedConfig);
	// safe-restart run supervises it.
	Foreground string `json:"foreground,omitempty"`
	// Reuseport says a start with SO_REUSEPORT on the listeners works
	// (see Overlapper): the config test passed with it.
	Reuseport bool `json:"reuseport,omitempty"`
	// NoReuseport is why the config test failed with it.
	NoReuseport string `json:"no_reuseport,omitempty"`
	// Elapsed is how long the config test took: the basis of the lineage
	// window, since a start spends about that long before it detaches.
	Elapsed time.Duration `json:"elapsed"`
}

// parseRunConfig parses the DUMP_RUN_CFG report, e.g.
//
//	ServerRoot: "/etc/apache2"
//	Mutex default: dir="/var/run/apache2/" mechanism=default
//	PidFile: "/var/run/apache2/apache2.pid"
//	User: name="www-data" id=33
//
// User is required: without it nothing can be judged.
func parseRunConfig(out string) (RunConfig, error) {
	rc := RunConfig{Mutexes: map[string]string{}}
	var haveUser bool
	var err error
	for _, line := range strings.Split(out, "\n") {
		if f, ok := includedFile(line); ok {
			rc.Files = append(rc.Files, f)
			continue
		}
		k, v, ok := strings.Cut(strings.TrimSpace(line), ": ")
		if !ok {
			continue
		}
		switch {
		case k == "ServerRoot":
			rc.ServerRoot = unquote(v)
		case k == "PidFile":
			rc.PidFile = unquote(v)
		case k == "Main ErrorLog":
			rc.ErrorLog = unquote(v)
		case strings.HasPrefix(k, "Mutex "):
			rc.Mutexes[strings.TrimPrefix(k, "Mutex ")] = strings.TrimSpace(v)
		case k == "User":
			rc.User, err = parseAccount(v)
			haveUser = err == nil
		case k == "Group":
			rc.Group, err = parseAccount(v)
		}
		if err != nil {
			return rc, fmt.Errorf("DUMP_RUN_CFG line %q: %w", line, err)
		}
	}
	if !haveUser {
		return rc, fmt.Errorf("DUMP_RUN_CFG reported no User")
	}
	return rc, nil
}

// includedFile reads one file of DUMP_INCLUDES' report, which lists the
// main file and then each included one with the line that includes it:
//
//	Included configuration files:
//	  (*) /etc/apache2/apache2.conf
//	    (146) /etc/apache2/mods-enabled/alias.load
func includedFile(line string) (string, bool) {
	t := strings.TrimSpace(line)
	if !strings.HasPrefix(t, "(") || !strings.HasPrefix(line, "  ") {
		return "", false
	}
	_, path, ok := strings.Cut(t, ") ")
	if !ok || !strings.HasPrefix(path, "/") {
		return "", false
	}
	return path, true
}

// apacheTLSFiles returns the certificate and key files that
// SSLCertificateFile and SSLCertificateKeyFile name in files, resolved
// against serverRoot; a path built from a variable (${...}) is left out,
// as are the lines files cannot be read for. A directive inside a section
// that does not apply is still listed: the list is what a renewal may
// touch, and what is served is judged by a TLS handshake.
func apacheTLSFiles(serverRoot string, files []string) []string {
	var out []string
	for _, f := range files {
		text, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(text), "\n") {
			fields := strings.Fields(line)
			if len(fields) != 2 || !(strings.EqualFold(fields[0], "SSLCertificateFile") || strings.EqualFold(fields[0], "SSLCertificateKeyFile")) {
				continue
			}
			path := strings.Trim(fields[1], `"`)
			if strings.Contains(path, "${") {
				continue
			}
			if !filepath.IsAbs(path) {
				path = filepath.Join(serverRoot, path)
			}
			out = appendNew(out, path)
		}
	}
	return out
}

// parseAccount parses `name="www-data" id=33`. Apache adds " not_used"
// when it does not run as root, since only root can switch to User: that
// is ErrNotRoot.
func parseAccount(v string) (Account, error) {
	namePart, idPart, ok := strings.Cut(v, " id=")
	if !ok || !strings.HasPrefix(namePart, "name=") {
		return Account{}, fmt.Errorf("want name=\"...\" id=N, got %q", v)
	}
	if strings.HasSuffix(strings.TrimSpace(idPart), " not_used") {
		return Account{}, fmt.Errorf("%w: the server's config test says its User and Group are not used unless it runs as root (%q)", ErrNotRoot, v)
	}
	id, err := strconv.ParseUint(strings.TrimSpace(idPart), 10, 32)
	if err != nil {
		return Account{}, fmt.Errorf("id: %w", err)
	}
	return Account{Name: unquote(strings.TrimPrefix(namePart, "name=")), ID: uint32(id)}, nil
}

func unquote(s string) string {
	if u, err := strconv.Unquote(strings.TrimSpace(s)); err == nil {
		return u
	}
	return strings.TrimSpace(s)
}

// refuseForeground is the refusal of a configuration that keeps the
// server in the foreground, for the commands that manage a daemon.
func (rc RunConfig) refuseForeground() error {
	if rc.Foreground == "" {
		return nil
	}
	return fmt.Errorf("%w: %s: safe-restart's start, stop, reload and restart manage a server that daemonizes "+
		"(its start must write the pidfile and return); one in the foreground belongs to its supervisor "+
		"(systemd, a container, or safe-restart run)", ErrUnsupportedConfig, rc.Foreground)
}

// UnixListen returns the unix socket paths among the configured listen
// addresses.
func (rc RunConfig) UnixListen() []string {
	var paths []string
	for _, l := range rc.Listen {
		if strings.HasPrefix(l, "/") {
			paths = append(paths, l)
		}
	}
	return paths
}
