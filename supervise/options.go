package supervise

import (
	"time"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/server"
	"github.com/safe-restart/safe-restart/supervise/systemd"
	"github.com/safe-restart/safe-restart/supervise/verify"
)

// StartOptions says which server to start.
type StartOptions struct {
	Profile    server.Profile
	Conf       string
	HealthURL  string        // "" means GET / on the master's first listener
	Timeout    time.Duration // for the master to come up and serve; 0 means 20 s (a start command itself may run up to systemd.StartTimeout, or this if longer)
	LineageDir string        // where the sets this start creates are recorded
	IntentDir  string        // where an interrupted stop left its record (see StopOptions)
	// NoHandoff makes a restart a plain one: the listening sockets close
	// with the old master instead of being handed to the new one.
	NoHandoff bool
	// NoOverlap makes a restart stop the old master before it starts the
	// new one (with the held sockets, if any): two generations never run
	// at once, at the cost of the clients waiting for the start.
	NoOverlap bool
	// NoTrial skips the proof that a new configuration can run (the
	// trial start and the bind check, see proveRuns) before a reload or
	// restart touches the running server.
	NoTrial bool
	// Unit names the systemd unit of the server ("" finds it, see systemd.FindUnit).
	Unit string
	// NoReceipt turns off the probes a reload or restart runs against the
	// running server's listeners while it acts (see verify.Receipt).
	NoReceipt bool
	// Hooks run around a restart's unavoidable gap (see server.Hooks).
	Hooks server.Hooks
	// stopped says a stop just stopped orphans and reaped (Restart), after
	// a check of the headroom (restartHeadroom): the start checks neither.
	stopped bool
	// handoff, set by a restart, holds the old master's sockets for the
	// new one.
	handoff *handoff
	// reuseport starts a server that can overlap with SO_REUSEPORT on its
	// listeners (see server.Overlapper): set by Restart, and by Start when the
	// config test with it passes.
	reuseport bool
	// unit is the server's systemd unit, resolved by the operation's entry
	// (findUnit); nil on a host without systemd or a server without one.
	unit *systemd.Unit
	// unitJob is the unit's job that starts the server: "start", or
	// "restart" when it replaces a running master (unitRestart).
	unitJob string
	// intoUnit starts the new master of an overlap under a unit in the
	// unit's control group (see unitOverlap); the check of systemd's view
	// waits for the old master's exit.
	intoUnit bool
	// watch is the operation's receipt (nil without one): the steps mark
	// when they act and when the new generation is verified.
	watch    *verify.Watch
	ProcRoot string
	Log      zerolog.Logger
}

// StopOptions says which server to stop and how.
type StopOptions struct {
	Profile  server.Profile
	Conf     string      // "" means the profile's
	Ladder   proc.Ladder // nil: the profile's, with DefaultGracefulWait (a restart through a systemd unit then uses the unit's restart job: see unitRestart)
	DryRun   bool        // report the plan: the pids and signals; change nothing
	ProcRoot string      // "/proc" when empty
	// LineageDir holds lineages of masters safe-restart started (see
	// ipcguard.Lineage); after a stop, the stopped master's is pruned.
	LineageDir string
	// IntentDir holds the record of a stop under way (see stopIntent);
	// "" keeps none.
	IntentDir string
	// Unit names the systemd unit of the server ("" finds it, see systemd.FindUnit).
	Unit string
	unit *systemd.Unit // resolved by the operation's entry; nil without one
	// lingerReady, when set, must pass before the master is sent its
	// Linger signal (see stopOldMaster).
	lingerReady func() error
	// successor is the new master an overlap's old master leaves serving,
	// recorded with the stop intent (see stopIntent).
	successor *ipcguard.Proc
	Log       zerolog.Logger
}

// ReloadOptions says which server to reload and how to recover it.
type ReloadOptions struct {
	Start StartOptions // profile, config, health check, timeout, state dirs, log
	Stop  StopOptions  // the ladder of the fallback restart
	// Hard sends HUP (restart in place, requests in flight cut) instead of
	// USR1 (graceful: children finish their requests).
	Hard bool
	// MaxReloads, when positive, is a reload budget per master: a master
	// that already logged this many reloads is restarted instead (a
	// library that leaks a pthread key per reload kills the master inside
	// its 1024th; REFERENCE.md §7).
	MaxReloads int
	// Full asks for a verified restart instead of the reload (a new
	// master: a binary or module upgrade).
	Full bool
	// StatusURL, when set, is the server's status page (Apache: mod_status
	// with ?auto), read first to count the master's reloads for
	// MaxReloads; the error log, which loses the count when rotated, is the
	// fallback.
	StatusURL string
	// SampleDir, when set, receives a Sample of the master after a
	// verified reload (doctor measures pthread keys per reload from them).
	SampleDir string
	// DrainTimeout, when positive, bounds how long the older generation
	// may finish its requests after a verified reload before TERM, then
	// KILL, end it (see drain); otherwise it is reported and not waited
	// for.
	DrainTimeout time.Duration
}
