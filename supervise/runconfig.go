package supervise

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Account is a user or group as the server resolved it.
type Account struct {
	Name string `json:"name"`
	ID   uint32 `json:"id"`
}

// RunConfig is what `apache2 -t -D DUMP_RUN_CFG` reports.
type RunConfig struct {
	ServerRoot string            `json:"server_root"`
	PidFile    string            `json:"pid_file"`
	ErrorLog   string            `json:"error_log"`
	User       Account           `json:"user"`
	Group      Account           `json:"group"`
	Mutexes    map[string]string `json:"mutexes"` // mutex name ("default", "mpm-accept") -> its line
	// Elapsed is how long the config test took: the basis of the lineage
	// window, since a start spends about that long before it detaches.
	Elapsed time.Duration `json:"elapsed"`
}

// ReadRunConfig runs the server's config test with DUMP_RUN_CFG against
// conf ("" means the profile's) and parses its report. A failing test
// returns a *ConfigTestError.
func ReadRunConfig(ctx context.Context, p Profile, conf string) (RunConfig, error) {
	if conf == "" {
		conf = p.Conf
	}
	argv := p.command(conf, "-t", "-D", "DUMP_RUN_CFG")
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	// Debian's apache2ctl runs $APACHE_HTTPD: the config test must be the
	// binary's own.
	cmd.Env = append(os.Environ(), "APACHE_HTTPD="+p.Binary)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)
	if err != nil {
		return RunConfig{}, &ConfigTestError{Server: p.Name, Argv: argv, Output: stdout.String() + stderr.String(), Err: err}
	}
	rc, err := parseRunConfig(stdout.String())
	if err != nil {
		return RunConfig{}, fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	rc.Elapsed = elapsed
	return rc, nil
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

// parseAccount parses `name="www-data" id=33`.
func parseAccount(v string) (Account, error) {
	namePart, idPart, ok := strings.Cut(v, " id=")
	if !ok || !strings.HasPrefix(namePart, "name=") {
		return Account{}, fmt.Errorf("want name=\"...\" id=N, got %q", v)
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
