package server

import (
	"context"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/sock"
)

// Driver is what differs between kinds of server (Apache, nginx, php-fpm, a
// service file): how to ask the server for its run configuration, start,
// stop and reload it, which IPC it creates, and how to read its log. Every
// other step (pidfile proof, the ladder, orphans, reaping, verification)
// is shared.
type Driver interface {
	// RunConfig runs the server's own config test against conf and
	// reports what the server will use; a failing test is a
	// *ConfigTestError.
	RunConfig(ctx context.Context, p Profile, conf string) (RunConfig, error)
	// StartArgv is the command that starts the server detached: it writes
	// the pidfile and returns.
	StartArgv(p Profile, conf string) []string
	// Ladder is the stop ladder; graceful bounds its graceful step (0: no
	// graceful step).
	Ladder(graceful time.Duration) proc.Ladder
	// ReloadSignal is the signal that reloads the server in place; hard
	// asks for the variant that cuts requests in flight.
	ReloadSignal(hard bool) syscall.Signal
	// Signature is the IPC objects the server creates, to judge and reap;
	// nil when it creates none that outlive it.
	Signature(p Profile, rc RunConfig) *ipcguard.Signature
	// Fatal reports whether an error log line (or a line of the starter's
	// output) means the server died or will die.
	Fatal(line string) bool
	// Reloaded reads the log written since the reload signal (mark is
	// where it starts) and returns the pid of the master that serves the
	// new generation once the log shows it (old.PID for servers that keep
	// their master), 0 while it does not yet. An error wrapping
	// ErrReloadRejected means the server refused the new configuration
	// and kept serving the old one: nothing to recover. It is called only
	// when the log is a readable file.
	Reloaded(logged string, old ipcguard.Proc) (int, error)
	// Reexecs reports whether a reload replaces the master process
	// (php-fpm's USR2 re-executes it, and a daemonized one forks a new
	// pid): the new master is found through the pidfile, and children of
	// the new generation are not required (pm = ondemand has none).
	Reexecs() bool
	// SpeaksHTTP reports whether the health check may GET / on a listener.
	SpeaksHTTP() bool
	// ReloadsLogged counts the reloads master logged in the error log
	// text (verify.MasterLog: the rotated files and the current one, oldest
	// first), -1 when the server does not log them.
	ReloadsLogged(log string, master ipcguard.Proc) int
	// ClearLeftovers removes what a killed generation left that would stop
	// a start (a unix socket file no process listens on), each with its
	// proof, after the orphans were stopped. It returns what it removed.
	ClearLeftovers(ctx context.Context, rc RunConfig, log zerolog.Logger) ([]string, error)
}

// ChildrenProver is implemented by the kinds that say themselves whether
// a reload shows by new children (a service file's daemon: only one with
// workers does); see ReloadStartsChildren.
type ChildrenProver interface{ ReloadStartsChildren() bool }

// ReloadStartsChildren reports whether children of the new generation are
// part of a reload's proof: they are for a master that stays and forks
// workers (Apache, nginx), not for one that re-executes (php-fpm) nor for
// a daemon that reloads in its one process (ChildrenProver).
func ReloadStartsChildren(d Driver) bool {
	if c, ok := d.(ChildrenProver); ok {
		return c.ReloadStartsChildren()
	}
	return !d.Reexecs()
}

// ClosesEarly is implemented by the kinds whose graceful stop closes the
// listeners at once but exits only once the requests in flight have
// finished (Apache's WINCH): a stop-then-start that waited for it would
// leave nothing accepting meanwhile, so a restart skips the graceful step.
type ClosesEarly interface{ ClosesEarly() }

// Inheritor is implemented by the kinds whose server can take its
// listening sockets from whoever starts it (REFERENCE.md §4): a full
// restart then holds the old master's sockets through the stop and hands
// them to the new master, so that no connection is refused in between.
type Inheritor interface {
	// InheritEnv prepares socks, which the new master gets as fds 3, 4,
	// ... in that order (the blocking mode the server expects), and
	// returns the environment variables that name them. An error says
	// a socket cannot be named to this server.
	InheritEnv(socks []sock.Held) ([]string, error)
	// StaysChild reports whether a master started with inherited sockets
	// does not daemonize (nginx): safe-restart then detaches it itself.
	StaysChild() bool
	// InheritVars are the variables InheritEnv may set (any value of
	// them in safe-restart's own environment is not passed on).
	InheritVars() []string
}

// Overlapper is a kind whose new master can bind its listening ports
// beside the old master's, both with SO_REUSEPORT (Apache 2.4 cannot
// inherit a listening socket, REFERENCE.md §4); safe-restart sets
// SO_REUSEPORT on the old master's sockets when it lacks it (see beside).
// A full restart then needs no moment without a listener: the new master
// starts and is verified while the old one serves, then every new
// connection goes to the new master, the old one's queues drain, and it
// stops gracefully.
type Overlapper interface {
	// ReuseportArgv is StartArgv with SO_REUSEPORT set on the listeners,
	// the user's own settings winning. RunConfig.Reuseport says whether
	// the config test passed with it: a server too old for it is started
	// plainly.
	ReuseportArgv(p Profile, conf string) []string
}

// AcceptProber is a kind whose check that it serves must see its workers
// take a connection: the kernel queues connections on its listening
// socket whether or not a worker lives, and no health check speaks its
// protocol (php-fpm: FastCGI).
type AcceptProber interface {
	// AcceptProbe is what a probe connection sends: the start of a
	// request, which the worker that takes it waits to complete.
	AcceptProbe() []byte
}

// ProbeStart is what a probe connection to k's listeners sends (see
// generationAccepts): the kind's own start of a request (AcceptProber),
// else the first line of an HTTP request, nil for a server that speaks
// neither. Data must come: Apache's listeners set TCP_DEFER_ACCEPT
// (AcceptFilter), and the kernel hands a connection to accept(2) only once
// data arrived.
func ProbeStart(k Driver) []byte {
	if ap, ok := k.(AcceptProber); ok {
		return ap.AcceptProbe()
	}
	if k.SpeaksHTTP() {
		return []byte("GET / HTTP/1.1\r\n")
	}
	return nil
}

// Lingerer is a kind whose master outlives its stopping tree (see Linger).
type Lingerer interface{ Linger() *proc.Linger }

// LingerOf is the Linger of p's kind, nil when it has none.
func LingerOf(p Profile) *proc.Linger {
	if l, ok := p.Driver.(Lingerer); ok {
		return l.Linger()
	}
	return nil
}

// InheritorOf returns the profile's kind as an Inheritor, or nil and why
// its sockets are not handed over (noHandoff: the user said so).
func InheritorOf(p Profile, noHandoff bool) (Inheritor, string) {
	inh, ok := p.Driver.(Inheritor)
	switch {
	case noHandoff:
		return nil, "disabled (--no-handoff)"
	case !ok:
		return nil, p.Kind + " cannot take listening sockets from its starter"
	}
	return inh, ""
}

// StatusCounter is a kind whose status page counts the master's reloads
// (Apache's mod_status). The error log, with the files logrotate renamed
// from it, is the other source (verify.MasterLog).
type StatusCounter interface {
	// ReloadsFromStatus reads how many times master has been reloaded from
	// its status page; an error when the page does not say, or is not
	// this master's.
	ReloadsFromStatus(page string, master ipcguard.Proc, now time.Time) (int, error)
}

// ConfReporter is a kind whose master's command line says which
// configuration it was started with (see Profile.master).
type ConfReporter interface {
	// StartedConf returns the configuration file the command line argv
	// of a master names, false when it names none this can resolve.
	StartedConf(argv []string) (string, bool)
}

// Upgrader is a kind whose master starts a new master of its own at a
// signal, on its own listening sockets (nginx's binary upgrade, USR2): the
// new master is the old one's child, so it is born in the old one's
// control group, namespaces, environment and limits; the old master first
// renames its pidfile to UpgradedPIDFile, which the new master then
// writes, and renames it back if the new master exits.
type Upgrader interface {
	UpgradeSignal() syscall.Signal
	UpgradedPIDFile(pidFile string) string
}

// Trialer is a kind whose start is tried in a sandbox before a reload or
// restart (see trial.Options.ProveRuns): Apache, whose config test (-t) misses what only
// a start does (mod_ssl's key check, binding, post_config hooks).
type Trialer interface {
	// TrialStarted reports whether logged (what the trial wrote to its
	// logs) shows master done with its start.
	TrialStarted(logged string, master ipcguard.Proc) bool
}
