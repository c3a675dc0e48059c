package metrics

import (
	"maps"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise"
	"github.com/safe-restart/safe-restart/supervise/proc"
)

// Facts are what `safe-restart metrics` exposes, gathered first (Gather)
// and registered after (Register), so the exposition is tested on crafted
// facts.
type Facts struct {
	Taken    time.Time
	IPC      *ipcguard.Snapshot // nil when it could not be read
	Services []ServiceFacts
	LastOps  []supervise.LastOperation
	// Build labels safe_restart_build_info (version, commit, build_date,
	// go_version: which safe-restart gathered these facts); none when nil.
	Build map[string]string
}

// ServiceFacts are one service's status and whether it serves.
type ServiceFacts struct {
	Name      string
	Err       error             // why the status could not be read
	Status    *supervise.Status // nil with Err
	IPCJudged bool              // the service has an IPC signature: its objects were judged
	ServeErr  error             // why it does not serve; nil when it does
}

// ipcKinds are the kinds of IPC object counted as orphaned per service.
var ipcKinds = []ipcguard.Kind{ipcguard.KindSem, ipcguard.KindShm, ipcguard.KindMsg, ipcguard.KindPosix}

// Register adds every metric to reg. A fact that is unknown (a count the
// server does not log, keys that could not be read) has no series: absent
// is not zero.
func (f Facts) Register(reg *prometheus.Registry) {
	g := gaugeMaker{reg}
	g.vec("safe_restart_metrics_timestamp_seconds", "When safe-restart metrics gathered these facts (Unix time): alert when it stops moving.").
		WithLabelValues().Set(unixSeconds(f.Taken))
	g.vec("safe_restart_pthread_keys_limit", "pthread keys a process can create (glibc PTHREAD_KEYS_MAX); past it, libgomp kills a reloaded Apache master.").
		WithLabelValues().Set(proc.PthreadKeysMax)
	if f.Build != nil {
		g.vec("safe_restart_build_info", "Which safe-restart gathered these facts: always 1, its version, commit, build date and Go version as labels.",
			slices.Sorted(maps.Keys(f.Build))...).With(f.Build).Set(1)
	}
	if f.IPC != nil {
		f.registerIPC(g)
	}
	f.registerServices(g)
	f.registerGenerations(g)
	f.registerLastOps(g)
}

// registerIPC adds the namespace's SysV IPC usage and limits.
func (f Facts) registerIPC(g gaugeMaker) {
	u, l := f.IPC.Usage, f.IPC.Limits
	for _, m := range []struct {
		name, help  string
		used, limit int
	}{
		{"safe_restart_sysv_sem_sets", "SysV semaphore sets in use (limit: SEMMNI; at it, semget fails with ENOSPC, Apache's AH00023).", u.SemSets, l.SEMMNI},
		{"safe_restart_sysv_semaphores", "SysV semaphores in use in all sets (limit: SEMMNS).", u.Sems, l.SEMMNS},
		{"safe_restart_sysv_shm_segments", "SysV shared memory segments in use (limit: SHMMNI).", u.ShmSegs, l.SHMMNI},
		{"safe_restart_sysv_msg_queues", "SysV message queues in use (limit: MSGMNI).", u.MsgQueues, l.MSGMNI},
	} {
		g.vec(m.name, m.help).WithLabelValues().Set(float64(m.used))
		g.vec(m.name+"_limit", "The kernel's limit for "+m.name+".").WithLabelValues().Set(float64(m.limit))
	}
}

// registerServices adds each service's status.
func (f Facts) registerServices(g gaugeMaker) {
	success := g.vec("safe_restart_status_success", "1 when the service's status was read (its config test passed), else 0 and the other service metrics are absent.", "service")
	up := g.vec("safe_restart_server_up", "1 when the master is alive, every listener accepts and the health check passes; a live master that serves nothing is 0.", "service")
	start := g.vec("safe_restart_master_start_time_seconds", "When the running master started (Unix time).", "service")
	reloads := g.vec("safe_restart_reloads_since_master_start", "Reloads of the running master, as --status-url or else its error log and the rotated ones count them; a gauge: a lower bound once the rotated files holding its start are deleted.", "service")
	keys := g.vec("safe_restart_pthread_keys_used", "pthread keys the master uses; each leaky module reload adds some (see safe_restart_pthread_keys_limit).", "service")
	workers := g.vec("safe_restart_orphaned_workers", "Workers of a dead master still alive (they hold the port and IPC; safe-restart start stops them).", "service")
	orphans := g.vec("safe_restart_ipc_orphaned_objects", "IPC objects of the service proven left behind by dead generations (safe-restart ipc reap removes them).", "service", "kind")
	for _, s := range f.Services {
		if s.Status == nil {
			success.WithLabelValues(s.Name).Set(0)
			continue
		}
		st := s.Status
		success.WithLabelValues(s.Name).Set(1)
		up.WithLabelValues(s.Name).Set(boolGauge(st.Master != nil && s.ServeErr == nil))
		workers.WithLabelValues(s.Name).Set(float64(len(st.Orphans)))
		if st.Master != nil {
			start.WithLabelValues(s.Name).Set(unixSeconds(st.Master.Start))
			setKnown(reloads, st.Reloads, s.Name)
			setKnown(keys, st.PthreadKeys, s.Name)
		}
		if s.IPCJudged {
			counts := orphansByKind(st.IPC)
			for _, k := range ipcKinds {
				orphans.WithLabelValues(s.Name, string(k)).Set(float64(counts[k]))
			}
		}
	}
}

// registerGenerations adds, for each service with a master, what its
// serving generation runs that is not on disk and the older generation
// still draining (see generation.Report).
func (f Facts) registerGenerations(g gaugeMaker) {
	loaded := g.vec("safe_restart_generation_loaded_timestamp_seconds", "When the serving generation read its configuration (Unix time; no earlier than that moment).", "service")
	changed := g.vec("safe_restart_config_files_changed", "Files of the configuration (its own, includes, certificates, keys) modified after the serving generation loaded it: a reload serves them.", "service")
	binary := g.vec("safe_restart_binary_replaced", "1 when the master's executable was replaced on disk since it started (an upgrade not running: restart).", "service")
	libs := g.vec("safe_restart_libraries_replaced", "Libraries and modules the master maps that were replaced on disk since (an upgrade not running).", "service")
	notServed := g.vec("safe_restart_tls_certificates_not_served", "Certificates served while a file of the configuration holds a newer one for the same name (a renewal not loaded: reload).", "service")
	expiry := g.vec("safe_restart_tls_certificate_expiry_timestamp_seconds", "When the certificate a TLS listener serves expires (Unix time), by listener and the name sent (\"\" for the default); a site's only, not a catch-all's that no configured file holds.", "service", "listener", "server_name")
	old := g.vec("safe_restart_old_generation_processes", "Processes of an older generation still alive (draining after a graceful reload).", "service")
	draining := g.vec("safe_restart_old_generation_draining_since_timestamp_seconds", "When the older generation still alive began to drain (Unix time); absent when none is alive.", "service")
	for _, s := range f.Services {
		if s.Status == nil || s.Status.Generation == nil {
			continue
		}
		r := s.Status.Generation
		loaded.WithLabelValues(s.Name).Set(unixSeconds(r.Loaded))
		changed.WithLabelValues(s.Name).Set(float64(len(r.Changed)))
		binary.WithLabelValues(s.Name).Set(boolGauge(r.Replaced.Exe != ""))
		libs.WithLabelValues(s.Name).Set(float64(len(r.Replaced.Libraries)))
		notServed.WithLabelValues(s.Name).Set(float64(len(r.NotServed())))
		for _, c := range r.TLS {
			if c.OfSite() {
				expiry.WithLabelValues(s.Name, c.Listener, c.ServerName).Set(unixSeconds(c.NotAfter))
			}
		}
		old.WithLabelValues(s.Name).Set(float64(len(r.Old)))
		if since := r.DrainingSince(); !since.IsZero() {
			draining.WithLabelValues(s.Name).Set(unixSeconds(since))
		}
	}
}

// registerLastOps adds every recorded last operation.
func (f Facts) registerLastOps(g gaugeMaker) {
	success := g.vec("safe_restart_last_operation_success", "1 when the service's last operation (start, stop, restart, reload, ipc-reap) exited 0.", "service", "op")
	code := g.vec("safe_restart_last_operation_exit_code", "The last operation's exit code: 0 ok, 1 failed, 3 refused (nothing touched), 4 reload failed and a restart recovered.", "service", "op")
	dur := g.vec("safe_restart_last_operation_duration_seconds", "How long the last operation took.", "service", "op")
	ended := g.vec("safe_restart_last_operation_timestamp_seconds", "When the last operation ended (Unix time).", "service", "op")
	probes := g.vec("safe_restart_last_operation_probes", "What the last reload or restart's own probes of the listeners saw while it acted (its receipt): answered, refused, reset or failed.", "service", "op", "outcome")
	gap := g.vec("safe_restart_last_operation_longest_gap_seconds", "The longest time no probe of the last reload or restart was answered while it acted.", "service", "op")
	verified := g.vec("safe_restart_last_operation_until_verified_seconds", "From the last reload or restart's first signal until its new generation was proven to serve; absent when it was not.", "service", "op")
	for _, op := range f.LastOps {
		success.WithLabelValues(op.Service, op.Op).Set(boolGauge(op.ExitCode == 0))
		code.WithLabelValues(op.Service, op.Op).Set(float64(op.ExitCode))
		dur.WithLabelValues(op.Service, op.Op).Set(op.Duration.Seconds())
		ended.WithLabelValues(op.Service, op.Op).Set(unixSeconds(op.Started.Add(op.Duration)))
		if r := op.Receipt; r != nil {
			for outcome, n := range map[string]int{"answered": r.Answered, "refused": r.Refused, "reset": r.Reset, "failed": r.Failed} {
				probes.WithLabelValues(op.Service, op.Op, outcome).Set(float64(n))
			}
			gap.WithLabelValues(op.Service, op.Op).Set(r.LongestGap.Seconds())
			if r.Verified > 0 {
				verified.WithLabelValues(op.Service, op.Op).Set(r.Verified.Seconds())
			}
		}
	}
}

// orphansByKind counts the report's objects proven orphan, by kind.
func orphansByKind(r ipcguard.Report) map[ipcguard.Kind]int {
	m := map[ipcguard.Kind]int{}
	for _, j := range r.Orphans() {
		m[j.Kind]++
	}
	return m
}

// gaugeMaker registers gauge vectors; a family with no series set is left
// out of the exposition.
type gaugeMaker struct{ reg *prometheus.Registry }

func (g gaugeMaker) vec(name, help string, labels ...string) *prometheus.GaugeVec {
	v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	g.reg.MustRegister(v)
	return v
}

// setKnown sets v's series to n unless n is -1 (unknown): then the
// series is absent.
func setKnown(v *prometheus.GaugeVec, n int, labels ...string) {
	if n >= 0 {
		v.WithLabelValues(labels...).Set(float64(n))
	}
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
