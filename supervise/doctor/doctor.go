package doctor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise"
	"github.com/safe-restart/safe-restart/supervise/growth"
	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/server"
)

// Target is one service doctor checks.
type Target struct {
	Profile server.Profile
	Conf    string // "" means the profile's
}

// Options say what Run checks and where it reads.
type Options struct {
	Targets []Target
	// All says the targets are every built-in service found installed
	// (BuiltinTargets), not one the caller named: a config test that fails
	// is then a finding, not an error, and every cron line counts.
	All bool
	// StateDir holds the lineages and the samples; doctor records one
	// sample per running master there (default /run/safe-restart).
	StateDir supervise.StateDir
	// Root is where logind's and cron's configuration are read (etc, run,
	// usr/lib, var/spool under it); "" means "/".
	Root string
}

// Report is every finding, machine-wide ones first.
type Report struct {
	Services []string  `json:"services"` // the services checked
	Findings []Finding `json:"findings"`
	// Notes are what doctor could not do (record a sample, read a file);
	// they are not findings.
	Notes []string `json:"notes,omitempty"`
}

// Run runs every check and changes nothing but its own samples: the
// machine-wide checks (SysV semaphore usage against the limits, reload
// cron lines without jitter) and, for each target, the service's (see
// serviceFindings). With a single named target, a failing config test is
// returned as the error (a *ConfigTestError).
func Run(ctx context.Context, o Options) (Report, error) {
	rep := Report{Services: []string{}, Findings: []Finding{}}
	o.StateDir = cmp.Or(o.StateDir, supervise.DefaultStateDir)
	o.Root = cmp.Or(o.Root, "/")
	snap, err := ipcguard.Take(ctx, ipcguard.Source{})
	if err != nil {
		return rep, err
	}
	rep.Findings = append(rep.Findings, semUsageFindings(snap)...)
	logind := readLogind(o.Root)
	rep.Notes = append(rep.Notes, logind.notes...)
	for _, t := range o.Targets {
		rep.Services = append(rep.Services, t.Profile.Name)
		fs, notes, err := serviceFindings(ctx, o, t, logind)
		if err != nil && !o.All {
			return rep, err
		}
		if err != nil {
			fs = []Finding{configTestFinding(t, err)}
		}
		rep.Findings = append(rep.Findings, fs...)
		rep.Notes = append(rep.Notes, notes...)
	}
	cron, notes := cronFindings(o.Root, o.cronFilter())
	rep.Findings = append(rep.Findings, cron...)
	rep.Notes = append(rep.Notes, notes...)
	return rep, ctx.Err()
}

// cronFilter keeps the cron lines that concern a named target's server;
// nil (every line) when doctor checks the whole machine.
func (o Options) cronFilter() func(target string) bool {
	if o.All {
		return nil
	}
	return func(target string) bool {
		for _, t := range o.Targets {
			if serverFamily(target) == serverFamily(t.Profile.Name) {
				return true
			}
		}
		return false
	}
}

// BuiltinTargets returns the built-in services installed here (see
// Installed), sorted by name.
func BuiltinTargets() []Target {
	var out []Target
	for _, p := range server.Installed() {
		out = append(out, Target{Profile: p})
	}
	return out
}

// configTestFinding reports a built-in service whose config test fails.
func configTestFinding(t Target, err error) Finding {
	return Finding{Check: "config-test", Service: t.Profile.Name, Severity: Critical,
		Summary:  "the configuration cannot be checked: the next start or reload fails",
		Evidence: []string{err.Error()},
		Fix:      fmt.Sprintf("fix the configuration until `%s` passes its config test (safe-restart status %s shows the output)", t.Profile.Binary, t.Profile.Name)}
}

// serviceFindings reads the service's status (ReadStatus: master, tree,
// orphans, IPC verdicts, pthread keys), records a sample of its master and
// runs each service check.
func serviceFindings(ctx context.Context, o Options, t Target, logind logindConf) ([]Finding, []string, error) {
	st, err := supervise.ReadStatus(ctx, t.Profile, t.Conf, o.StateDir.Lineages(), "")
	if err != nil {
		return nil, nil, err
	}
	var notes []string
	history, err := recordAndLoad(o.StateDir.Samples(), st)
	if err != nil {
		notes = append(notes, err.Error())
	}
	conf := cmp.Or(t.Conf, t.Profile.Conf)
	var out []Finding
	out = append(out, warningFindings(st, conf)...)
	out = append(out, pidfileFindings(st)...)
	out = append(out, orphanFindings(st)...)
	out = append(out, unitFindings(st)...)
	out = append(out, keyFindings(st, history, !t.Profile.Reexecs())...)
	out = append(out, removeIPCFindings(ctx, t.Profile, conf, st, logind)...)
	out = append(out, memoryFindings(st, history)...)
	out = append(out, driftFindings(st, t.Profile.Reexecs(), time.Now())...)
	logs, lognotes := logFindings(st.Service, st.Config)
	out = append(out, oomFindings(proc.DefaultRoot, st, logs)...)
	return out, append(notes, lognotes...), nil
}

// recordAndLoad records a sample of the status's master (when one runs)
// and returns the service's samples.
func recordAndLoad(dir string, st supervise.Status) ([]growth.Sample, error) {
	if s, _, err := st.RecordSample(dir); err != nil {
		history, _ := growth.LoadSamples(dir, st.Service)
		return append(history, s), err
	}
	return growth.LoadSamples(dir, st.Service)
}

// warningFindings turns the config's warnings (php-fpm's
// process_control_timeout = 0, a service file's) into findings.
func warningFindings(st supervise.Status, conf string) []Finding {
	var out []Finding
	for _, w := range st.Warnings {
		out = append(out, Finding{Check: "config", Service: st.Service, Severity: Warning, Summary: w,
			Evidence: []string{"reported by the config test of " + conf},
			Fix:      fmt.Sprintf("change the setting named above in %s, then `safe-restart reload %s`", conf, st.Service)})
	}
	return out
}

// pidfileFindings reports a pidfile that names no live master, or another
// process.
func pidfileFindings(st supervise.Status) []Finding {
	switch {
	case errors.Is(st.Err, proc.ErrStalePIDFile), errors.Is(st.Err, proc.ErrBadPIDFile):
		return []Finding{{Check: "stale-pidfile", Service: st.Service, Severity: Warning,
			Summary:  "the pidfile names no live master: the server died without removing it (kill -9, OOM kill, crash)",
			Evidence: []string{st.NotRunning},
			Fix: fmt.Sprintf("`safe-restart start %s` proves the pid dead, stops orphaned workers, reaps the dead generation's IPC and starts it; "+
				"an init script that trusts the pidfile may signal whatever process gets that pid next", st.Service)}}
	case errors.Is(st.Err, proc.ErrForeignProcess), errors.Is(st.Err, proc.ErrPIDReused):
		return []Finding{{Check: "stale-pidfile", Service: st.Service, Severity: Critical,
			Summary:  "the pidfile names another process: a plain `kill $(cat pidfile)` would signal it",
			Evidence: []string{st.NotRunning},
			Fix:      fmt.Sprintf("check that process, then `safe-restart start %s` (it never signals a pid it cannot prove)", st.Service)}}
	}
	return nil
}

// orphanFindings reports workers of a dead master, and SysV sets that dead
// generations leaked (ipcguard's Orphan verdict, with its proof).
func orphanFindings(st supervise.Status) []Finding {
	var out []Finding
	if len(st.Orphans) > 0 {
		ev := []string{}
		for _, pid := range st.Orphans {
			if p, err := ipcguard.ReadProc(proc.DefaultRoot, pid); err == nil {
				ev = append(ev, fmt.Sprintf("pid %d (%s, uid %d, parent %d, started %s): its master (session leader %d) is dead; it still holds a listening socket",
					pid, p.Comm, p.UID, p.PPID, p.Start.Format("2006-01-02 15:04:05"), p.Session))
			}
		}
		out = append(out, Finding{Check: "orphaned-workers", Service: st.Service, Severity: Critical,
			Summary:  fmt.Sprintf("%d worker(s) of a dead master still run: they hold the port and the semaphores, so a fresh start fails (AH00072)", len(st.Orphans)),
			Evidence: ev,
			Fix:      fmt.Sprintf("`safe-restart start %s` stops them first (event/worker orphans ignore TERM: it escalates to KILL once TERM is verified to fail)", st.Service)})
	}
	if orphans := st.IPC.Orphans(); len(orphans) > 0 {
		ev := []string{}
		for _, j := range orphans {
			ev = append(ev, fmt.Sprintf("%s id %d: %s", j.Kind, j.ID, strings.Join(j.Proof, "; ")))
		}
		out = append(out, Finding{Check: "sysv-orphans", Service: st.Service, Severity: Warning,
			Summary:  fmt.Sprintf("%d SysV object(s) leaked by dead generations count against the kernel's limits: enough of them and semget fails (AH00023)", len(orphans)),
			Evidence: ev,
			Fix:      fmt.Sprintf("`safe-restart ipc reap --service %s` shows the plan, `--yes` removes exactly these", st.Service)})
	}
	return out
}

// semUsageThreshold is the share of SEMMNI or SEMMNS in use from which
// doctor reports the usage.
const semUsageThreshold = 80

// semUsageFindings reports semaphore usage near the kernel's limits
// (machine-wide: the limits are the IPC namespace's).
func semUsageFindings(snap ipcguard.Snapshot) []Finding {
	u, l := snap.Usage, snap.Limits
	if u.SemSetPct < semUsageThreshold && u.SemsPct < semUsageThreshold && snap.SemSetsFree() >= supervise.SysVSetsNeeded {
		return nil
	}
	owners := map[uint32]int{}
	for _, s := range snap.Sem {
		owners[s.UID]++
	}
	ev := []string{
		fmt.Sprintf("%d of %d semaphore sets in use (%.0f%% of SEMMNI), %d of %d semaphores (%.0f%% of SEMMNS), from /proc/sys/kernel/sem and /proc/sysvipc/sem",
			u.SemSets, l.SEMMNI, u.SemSetPct, u.Sems, l.SEMMNS, u.SemsPct),
		"sets by owner uid: " + ownerCounts(owners),
	}
	return []Finding{{Check: "sysv-limits", Severity: Critical,
		Summary:  fmt.Sprintf("SysV semaphores are near the kernel's limits: only %d sets free; the next semget fails with ENOSPC (Apache: AH00023, the server exits)", snap.SemSetsFree()),
		Evidence: ev,
		Fix:      "`safe-restart ipc ls --service SERVICE --proof` names the sets dead generations leaked and `safe-restart ipc reap --service SERVICE --yes` removes them; raise the fourth field of kernel.sem (SEMMNI) if the sets are all in use"}}
}

// ownerCounts formats owner uid -> count, largest first.
func ownerCounts(m map[uint32]int) string {
	uids := make([]uint32, 0, len(m))
	for u := range m {
		uids = append(uids, u)
	}
	slices.SortFunc(uids, func(a, b uint32) int { return m[b] - m[a] })
	parts := make([]string, len(uids))
	for i, u := range uids {
		parts[i] = fmt.Sprintf("uid %d: %d", u, m[u])
	}
	return strings.Join(parts, ", ")
}

// unitFindings: systemd's view of the server is wrong (README.md
// invariant 8): systemctl stop, reload and status do not manage the
// master that serves, or a failed unit waits for a start; or systemd
// could not be asked, which refuses every operation.
func unitFindings(st supervise.Status) []Finding {
	why := st.UnitRisk()
	switch {
	case why == "":
		return nil
	case st.UnitErr != nil:
		return []Finding{{Check: "systemd-unit", Service: st.Service, Severity: Critical,
			Summary:  "safe-restart cannot ask systemd about the unit: every operation on this service is refused (exit 3)",
			Evidence: []string{why},
			Fix:      "make `systemctl show` work for root here (systemd's private socket, /run/systemd/private)"}}
	}
	return []Finding{{Check: "systemd-unit", Service: st.Service, Severity: Warning,
		Summary:  "systemd's view of the service is not the truth: its unit commands act on the wrong state",
		Evidence: []string{why},
		Fix:      fmt.Sprintf("`safe-restart restart %s` (or `start`, for a failed unit) starts the master through its unit", st.Service)}}
}
