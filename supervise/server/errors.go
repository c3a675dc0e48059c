package server

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Callers match them with errors.Is.
var (
	// ErrUnknownService reports a service name with no built-in profile.
	ErrUnknownService = errors.New("unknown service")
	// ErrConfigTest reports a server config test that failed.
	ErrConfigTest = errors.New("config test failed")
	// ErrUnsupportedConfig reports a configuration this tool cannot manage
	// safely (nginx with daemon off); nothing was touched.
	ErrUnsupportedConfig = errors.New("unsupported configuration")
	// ErrNoPidFile reports a configuration without a pid file (php-fpm
	// writes none unless `pid` is set): nothing could find its master.
	ErrNoPidFile = errors.New("no pid file configured (php-fpm: set pid = /run/php/php-fpm.pid in [global]); safe-restart finds and proves the master only through it")
	// ErrServiceFile reports a service file that cannot be used; the
	// wrapping error names the file, the key and the problem.
	ErrServiceFile = errors.New("bad service file")
	// ErrUnknownUnit reports a --unit that systemd does not have loaded.
	ErrUnknownUnit = errors.New("unknown systemd unit")
	// ErrNotRoot reports a command run without root for a server whose
	// master runs as root (it could neither prove nor signal it).
	ErrNotRoot = errors.New("safe-restart must run as root for this server")
)

// ConfigTestError is a failed config test, with what the server said.
type ConfigTestError struct {
	Server string   // profile name
	Argv   []string // the command that ran
	Output string   // its stdout and stderr
	Err    error    // the exit status, or why it could not run
}

func (e *ConfigTestError) Error() string {
	out := strings.TrimSpace(e.Output)
	if out != "" {
		out = ": " + out
	}
	return fmt.Sprintf("%s config test (%s): %v%s", e.Server, strings.Join(e.Argv, " "), e.Err, out)
}

// Unwrap returns the underlying cause.
func (e *ConfigTestError) Unwrap() error { return e.Err }

// Is matches ErrConfigTest.
func (e *ConfigTestError) Is(target error) bool { return target == ErrConfigTest }

// ErrNoIPC reports a server that creates no IPC objects that outlive it
// (nginx and php-fpm share memory through anonymous mappings).
var ErrNoIPC = errors.New("creates no IPC objects that outlive it")

// ErrReloadRejected reports a reload the server refused (nginx keeps its
// old configuration when the new one fails): the old generation serves.
var ErrReloadRejected = errors.New("the server rejected the new configuration and kept the old one")

// ErrNginxConf reports nginx output this tool cannot read: a `nginx -T`
// dump or `nginx -V` report it does not understand.
var ErrNginxConf = errors.New("unreadable nginx output")
