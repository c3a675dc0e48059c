package supervise

import (
	"time"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/sock"
	"github.com/safe-restart/safe-restart/supervise/trial"
	"github.com/safe-restart/safe-restart/supervise/verify"
)

// StartReport says what Start found and did.
type StartReport struct {
	AlreadyRunning bool                `json:"already_running"`
	Orphans        []int               `json:"orphans_stopped"`
	Leftovers      []string            `json:"leftovers_removed"`
	Reaped         []ipcguard.Outcome  `json:"reaped"`
	Master         *ipcguard.Proc      `json:"master,omitempty"`
	Listeners      []sock.Listener     `json:"listeners"`
	Created        []ipcguard.SetStamp `json:"ipc_created"`
	StarterOutput  string              `json:"starter_output,omitempty"`
}

// StopReport says what Stop found and did.
type StopReport struct {
	Master  *ipcguard.Proc     `json:"master,omitempty"` // nil when none was running
	Tree    []int              `json:"tree"`             // pids waited for
	Orphans []int              `json:"orphans_stopped"`  // workers of dead masters stopped
	Steps   []proc.StepReport  `json:"steps"`
	Reaped  []ipcguard.Outcome `json:"reaped"`
	Planned bool               `json:"dry_run"`

	unitMain bool // the master was its systemd unit's main process
}

// ReloadReport says what Reload did.
type ReloadReport struct {
	Master      *ipcguard.Proc `json:"master,omitempty"`
	Signal      string         `json:"signal,omitempty"`
	OldChildren []int          `json:"old_children"`
	NewChildren []int          `json:"new_children"`
	// Fallback says why a verified restart or start replaced the reload;
	// Recovered says the server had died or was not running and now serves
	// again (exit 4).
	Fallback string `json:"fallback,omitempty"`
	// PthreadKeys is the master's pthread keys in use before the reload, -1
	// when its table could not be read.
	PthreadKeys int            `json:"pthread_keys"`
	Recovered   bool           `json:"recovered"`
	Restart     *RestartReport `json:"restart,omitempty"`
	// Trial is the trial start that proved the new configuration runs
	// before the master was touched (nil when no master was running).
	Trial *trial.Report `json:"trial,omitempty"`
	// Receipt is what clients saw while the reload (or the restart that
	// replaced it) acted; nil with NoReceipt, or when no master ran.
	Receipt *verify.Receipt `json:"receipt,omitempty"`
	// Drain is how the older generation ended after a verified reload
	// (nil after a restart or a recovery).
	Drain *DrainReport `json:"drain,omitempty"`

	old []ipcguard.Proc // the master's children before the signal
}

// DrainReport says how the older generation of a reload ended.
type DrainReport struct {
	// Bound is how long it was given, BoundBy "--drain-timeout"; when it
	// was not waited for, the server's own bound and its setting (nginx's
	// worker_shutdown_timeout, php-fpm's process_control_timeout: the
	// server ends them itself), or none.
	Bound   time.Duration `json:"bound_ns"`
	BoundBy string        `json:"bound_by,omitempty"`
	// Old are its processes still alive once the new generation was
	// verified; Drained how long they took to exit by themselves (all of
	// them, or the bound).
	Old     []int         `json:"old"`
	Drained time.Duration `json:"drained_ns"`
	// Ended are the ladder's steps on those that outlived the bound; Left
	// those still alive (not waited for, or outliving the ladder).
	Ended []proc.StepReport `json:"ended,omitempty"`
	Left  []int             `json:"left"`
}

// RestartReport is what the stop and the start of a restart did.
type RestartReport struct {
	Stop  StopReport  `json:"stop"`
	Start StartReport `json:"start"`
	// Handoff says whether the listening sockets were handed from the old
	// master to the new one (nil for a restart that found no master).
	Handoff *HandoffReport `json:"handoff,omitempty"`
	// Overlap says the new master started beside the old one, which
	// stopped only then (on SO_REUSEPORT, see server.Overlapper, or on the held
	// sockets, see server.Inheritor); OverlapSkipped says why a server that can
	// overlap did not.
	Overlap        bool   `json:"overlap"`
	OverlapSkipped string `json:"overlap_skipped,omitempty"`
	// Steered says the overlap sent every new connection to the new
	// master and let the old master's sockets drain before it stopped
	// (see beside), rather than relying on the kernel's migration.
	Steered bool `json:"steered,omitempty"`
	// UnitJob is the systemd job that replaced the master ("restart"),
	// when the unit's own job did.
	UnitJob string `json:"unit_job,omitempty"`
	// Trial is the trial start that proved the new configuration runs
	// before the old master was touched (nil when none was running, or
	// when a reload's trial already ran).
	Trial *trial.Report `json:"trial,omitempty"`
	// Receipt is what clients saw while the restart acted; nil with
	// NoReceipt, for a dry run, when no master ran, or within a reload
	// (whose report holds it).
	Receipt *verify.Receipt `json:"receipt,omitempty"`
	// Hooks are the hooks run around a gap the restart could not avoid
	// (also in the receipt).
	Hooks []verify.HookRun `json:"hooks,omitempty"`
}

// HandoffReport says whether a restart handed the listening sockets over.
type HandoffReport struct {
	// Held are the old master's listeners held through the stop and
	// passed to the new master.
	Held []sock.Listener `json:"held"`
	// Fallback says why the restart was a plain one (the sockets closed
	// with the old master: connections are refused until the new one
	// listens); "" when they were handed over.
	Fallback string `json:"fallback,omitempty"`
	// Relinked are unix socket paths the old master unlinked as it
	// exited, linked back to the held socket.
	Relinked []string `json:"relinked,omitempty"`
	// Guarded are unix socket paths bind-mounted over themselves through
	// the stop, so that the old master could not unlink them.
	Guarded []string `json:"guarded,omitempty"`
}
