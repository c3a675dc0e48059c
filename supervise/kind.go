package supervise

import (
	"context"
	"errors"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
)

// kind is what differs between kinds of server (Apache, nginx, php-fpm, a
// service file): how to ask the server for its run configuration, start,
// stop and reload it, which IPC it creates, and how to read its log. Every
// other step (pidfile proof, the ladder, orphans, reaping, verification)
// is shared.
type kind interface {
	// runConfig runs the server's own config test against conf and
	// reports what the server will use; a failing test is a
	// *ConfigTestError.
	runConfig(ctx context.Context, p Profile, conf string) (RunConfig, error)
	// startArgv is the command that starts the server detached: it writes
	// the pidfile and returns.
	startArgv(p Profile, conf string) []string
	// ladder is the stop ladder; graceful bounds its graceful step (0: no
	// graceful step).
	ladder(graceful time.Duration) proc.Ladder
	// reloadSignal is the signal that reloads the server in place; hard
	// asks for the variant that cuts requests in flight.
	reloadSignal(hard bool) syscall.Signal
	// signature is the IPC objects the server creates, to judge and reap;
	// nil when it creates none that outlive it.
	signature(p Profile, rc RunConfig) *ipcguard.Signature
	// fatal reports whether an error log line (or a line of the starter's
	// output) means the server died or will die.
	fatal(line string) bool
	// reloaded reads the log written since the reload signal (mark is
	// where it starts) and returns the pid of the master that serves the
	// new generation once the log shows it (old.PID for servers that keep
	// their master), 0 while it does not yet. An error wrapping
	// ErrReloadRejected means the server refused the new configuration
	// and kept serving the old one: nothing to recover. It is called only
	// when the log is a readable file.
	reloaded(logged string, old ipcguard.Proc) (int, error)
	// reexecs reports whether a reload replaces the master process
	// (php-fpm's USR2 re-executes it, and a daemonized one forks a new
	// pid): the new master is found through the pidfile, and children of
	// the new generation are not required (pm = ondemand has none).
	reexecs() bool
	// speaksHTTP reports whether the health check may GET / on a listener.
	speaksHTTP() bool
	// reloadsLogged counts the reloads master logged in the error log
	// text (masterLog: the rotated files and the current one, oldest
	// first), -1 when the server does not log them.
	reloadsLogged(log string, master ipcguard.Proc) int
	// clearLeftovers removes what a killed generation left that would stop
	// a start (a unix socket file no process listens on), each with its
	// proof, after the orphans were stopped. It returns what it removed.
	clearLeftovers(ctx context.Context, rc RunConfig, log zerolog.Logger) ([]string, error)
}

// ErrReloadRejected reports a reload the server refused (nginx keeps its
// old configuration when the new one fails): the old generation serves.
var ErrReloadRejected = errors.New("the server rejected the new configuration and kept the old one")
