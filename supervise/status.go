package supervise

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/generation"
	"github.com/safe-restart/safe-restart/supervise/growth"
	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/server"
	"github.com/safe-restart/safe-restart/supervise/sock"
	"github.com/safe-restart/safe-restart/supervise/systemd"
	"github.com/safe-restart/safe-restart/supervise/verify"
)

// Status is what a server is doing now, and the risks found.
type Status struct {
	Service    string         `json:"service"`
	Master     *ipcguard.Proc `json:"master,omitempty"`
	NotRunning string         `json:"not_running,omitempty"` // why no master was accepted
	// PIDFileWrong says why the pidfile does not name the master, which
	// was found by its listening sockets instead (masterByListeners).
	PIDFileWrong string          `json:"pidfile_wrong,omitempty"`
	Uptime       time.Duration   `json:"uptime_ns,omitempty"`
	Tree         []int           `json:"tree,omitempty"`
	Listeners    []sock.Listener `json:"listeners,omitempty"`
	// Reloads counts the reloads this master logged (Apache: graceful
	// AH00171/AH00493 and hard AH00173/AH00494, REFERENCE.md §6) in its
	// error log and the rotated ones since it started (verify.MasterLog); -1 when
	// the log cannot be read or the server does not log them.
	Reloads int   `json:"reloads"`
	Orphans []int `json:"orphans,omitempty"`
	// PthreadKeys is the master's pthread keys in use, -1 when unreadable.
	PthreadKeys int             `json:"pthread_keys"`
	IPC         ipcguard.Report `json:"ipc"`
	// Unit is the server's systemd service, nil on a host without systemd
	// or for a server no unit runs (see systemd.FindUnit).
	Unit *systemd.Unit `json:"systemd_unit,omitempty"`
	// Generation is what the serving generation runs that is no longer on
	// disk, and the older generation still draining (nil without a master).
	Generation *generation.Report `json:"generation,omitempty"`
	Risks      []string           `json:"risks"`
	Warnings   []string           `json:"-"` // the config's, part of Risks

	// Err says why no master was accepted (NotRunning is its text).
	Err error `json:"-"`
	// UnitErr says why the systemd unit could not be read.
	UnitErr error `json:"-"`
	// Config is what the config test reported (doctor judges it).
	Config server.RunConfig `json:"-"`

	tree    []ipcguard.Proc // the master's tree, of which Tree is the pids
	ipc     bool            // the server's IPC is tracked (it has a signature)
	reexecs bool            // a reload re-executes the master (server.Profile.Reexecs)
}

// ReadStatus reports on the server without changing anything; unit names
// its systemd unit ("" finds it, see systemd.FindUnit).
func ReadStatus(ctx context.Context, p server.Profile, conf, lineageDir, unit string) (Status, error) {
	st := Status{Service: p.Name, Reloads: -1, PthreadKeys: -1, Risks: []string{}, reexecs: p.Reexecs()}
	sig, rc, err := p.Prepare(ctx, conf, zerolog.Nop())
	if err != nil {
		return st, err
	}
	procs, err := ipcguard.ReadProcTable(proc.DefaultRoot)
	if err != nil {
		return st, err
	}
	master, err := p.Master(proc.DefaultRoot, rc)
	if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, proc.ErrStalePIDFile) {
		// The pidfile names something, but no master of this server.
		if m, ok := masterByListeners(proc.DefaultRoot, procs, p, rc); ok {
			st.PIDFileWrong, master, err = err.Error(), m, nil
		}
	}
	if err == nil {
		st.describeMaster(procs, master, p, rc)
	} else {
		st.NotRunning, st.Err = err.Error(), err
	}
	orphans, err := Orphans(proc.DefaultRoot, procs, p.Binary, st.Master)
	if err != nil {
		return st, err
	}
	st.Orphans = proc.PIDs(orphans)
	st.Warnings, st.Config = rc.Warnings, rc
	st.Unit, err = systemd.FindUnit(ctx, systemd.UnitQuery{Profile: p, Conf: conf, Name: unit, Log: zerolog.Nop()}, st.Master)
	if errors.Is(err, systemd.ErrServiceManager) {
		st.UnitErr = err // reported as a risk: the rest of the status stands
	} else if err != nil {
		return st, err
	}
	if st.ipc = sig != nil; st.ipc {
		st.IPC, err = ipcguard.Inspect(ctx, ipcguard.InspectOptions{Signature: sig, Window: server.LineageWindow(rc.Elapsed), LineageDir: lineageDir})
		if err != nil {
			return st, err
		}
	}
	st.Risks = st.risks(sig != nil)
	return st, nil
}

// TracksIPC reports whether the server's SysV IPC is tracked (Apache's;
// nginx and php-fpm create none): IPC is empty otherwise.
func (st Status) TracksIPC() bool { return st.ipc }

func (st *Status) describeMaster(procs ipcguard.ProcTable, master ipcguard.Proc, p server.Profile, rc server.RunConfig) {
	st.Master = &master
	st.Uptime = time.Since(master.Start).Round(time.Second)
	if keys, err := proc.PthreadKeysInUse(proc.DefaultRoot, master.PID); err == nil {
		st.PthreadKeys = keys
	}
	st.tree = proc.Descendants(procs, master, p.Binary)
	st.Tree = proc.PIDs(st.tree)
	if listening, err := sock.ReadListening(proc.DefaultRoot); err == nil {
		st.Listeners = sock.ListenersOf(proc.DefaultRoot, master.PID, listening)
	}
	text := verify.MasterLog(rc.ServerRoot, rc.ErrorLog, master.Start)
	if text != "" {
		st.Reloads = p.Driver.ReloadsLogged(text, master)
	}
	g := generation.Read(generation.Input{Profile: p, Config: rc, Master: master, Tree: st.tree, Listeners: st.Listeners, Log: text})
	st.Generation = &g
}

// risks names what could take the server down at its next start or reload.
func (st *Status) risks(ipc bool) []string {
	out := append([]string{}, st.Warnings...)
	if len(st.Orphans) > 0 {
		out = append(out, fmt.Sprintf("orphaned workers of a dead master hold the port and IPC: pids %v (safe-restart start stops them)", st.Orphans))
	}
	if n := st.IPC.Count()[ipcguard.Orphan]; ipc && n > 0 {
		out = append(out, fmt.Sprintf("%d semaphore set(s) leaked by dead generations (safe-restart ipc reap --service %s)", n, st.Service))
	}
	if free := st.IPC.Snapshot.SemSetsFree(); ipc && free < SysVSetsNeeded {
		out = append(out, fmt.Sprintf("only %d semaphore sets free (SEMMNI %d): a start or reload may fail with AH00023", free, st.IPC.Snapshot.Limits.SEMMNI))
	}
	if st.PthreadKeys >= proc.PthreadKeysMax-PthreadKeysMargin {
		out = append(out, fmt.Sprintf("the master uses %d of %d pthread keys: its next reload may kill it (safe-restart %s restarts it instead)",
			st.PthreadKeys, proc.PthreadKeysMax, st.Service))
	}
	if why := st.UnitRisk(); why != "" {
		out = append(out, why)
	}
	if st.PIDFileWrong != "" {
		out = append(out, fmt.Sprintf("the pidfile does not name the master (%s): master %d was found by its listening sockets, "+
			"and every command that acts refuses until the pidfile names it", st.PIDFileWrong, st.Master.PID))
	}
	if errors.Is(st.Err, proc.ErrForeignProcess) || errors.Is(st.Err, proc.ErrPIDReused) {
		out = append(out, "the pidfile names another process, which may stop the server's own start: "+st.NotRunning)
	}
	return append(out, st.DriftRisks(time.Now())...)
}

// UnitRisk says what in systemd's view of the server is wrong (README.md
// invariant 8), "" when nothing or there is no unit.
func (st *Status) UnitRisk() string {
	u := st.Unit
	switch {
	case st.UnitErr != nil:
		return "systemd runs this host, but safe-restart cannot ask it about the unit: " + st.UnitErr.Error()
	case u == nil || u.Inside:
		return ""
	case st.Master != nil:
		if why := u.ModelError(proc.DefaultRoot, *st.Master, st.tree); why != "" {
			return why + ": systemctl stop/reload/status do not manage this master (safe-restart restart " + st.Service + " replaces it with one the unit starts)"
		}
	case u.Active == "active":
		return fmt.Sprintf("unit %s is active (MainPID %d) but the pidfile names no live master", u.Name, u.MainPID)
	case u.Active == "failed":
		return fmt.Sprintf("unit %s failed (%s): safe-restart start %s clears what the dead server left and starts it through the unit", u.Name, u.Sub, st.Service)
	}
	return ""
}

// Serves checks that the server st describes serves now: its master is
// alive, every listener it holds accepts, and the health check passes
// (healthURL, else the profile's, else GET / on the first TCP listener of
// an HTTP server, as after a start). A live master that serves nothing
// fails it.
func (st Status) Serves(p server.Profile, healthURL string, timeout time.Duration) error {
	if st.Master == nil {
		return fmt.Errorf("not running: %s", st.NotRunning)
	}
	return verify.CheckServes(st.Listeners, cmp.Or(healthURL, p.HealthURL), p.Driver.SpeaksHTTP(), timeout)
}

// masterByListeners finds the server's master when its pidfile names no
// master of it (it names a worker or another process, or is no regular
// file): the one live process running the server's binary that leads its
// own session (the servers' masters call setsid, their workers do not,
// see proc.ProveMaster; an orphaned worker leads none), that was not started
// with another configuration file (Profile.StartedWith), and
// that holds a listening socket, on one of rc's addresses when the config
// names them. ok is false when there is no such process, or more than one
// (other instances of the binary, which their command lines do not tell
// apart).
func masterByListeners(root string, procs ipcguard.ProcTable, p server.Profile, rc server.RunConfig) (ipcguard.Proc, bool) {
	listening, err := sock.ReadListening(root)
	if err != nil {
		return ipcguard.Proc{}, false
	}
	var found []ipcguard.Proc
	for _, m := range proc.RunningExactly(procs, p.Binary) {
		if m.Session != m.PID || p.StartedWith(root, m, rc) != "" {
			continue
		}
		if slices.ContainsFunc(sock.ListenersOf(root, m.PID, listening), func(l sock.Listener) bool { return configured(l, rc.Listen) }) {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		return ipcguard.Proc{}, false
	}
	return found[0], true
}

// configured reports whether l is on one of listen's addresses, in the
// forms the servers write them (sock.ConfigListens: "80", "*:80",
// "[::1]:9000", a unix socket path); any listener is when listen is empty
// (the config test does not name them).
func configured(l sock.Listener, listen []string) bool {
	return len(listen) == 0 || sock.ConfigListens(listen, l)
}

// RecordSample records, for doctor, a sample of the master the status
// found in dir (StateDir.Samples) and returns it; ok is false, and nothing
// is recorded, when no master runs.
func (st Status) RecordSample(dir string) (s growth.Sample, ok bool, err error) {
	if s, ok = sampleOf(proc.DefaultRoot, st); ok {
		err = growth.RecordSample(dir, st.Service, s)
	}
	return s, ok, err
}

// sampleOf is the sample of a status that found a master.
func sampleOf(procRoot string, st Status) (growth.Sample, bool) {
	if st.Master == nil {
		return growth.Sample{}, false
	}
	return growth.TakeSample(procRoot, *st.Master, st.Reloads, st.PthreadKeys, st.Tree), true
}

// DriftRisks says what the serving generation runs that is not what is on
// disk, which operation makes it so, and which older generation still
// drains (see generation.Report); none without a master.
func (st *Status) DriftRisks(now time.Time) []string {
	g := st.Generation
	if g == nil {
		return nil
	}
	var out []string
	fix := "safe-restart " + g.Fix(st.reexecs) + " " + st.Service
	if g.Replaced.Exe != "" {
		out = append(out, fmt.Sprintf("the master runs a binary since replaced on disk (%s): an upgrade not yet running (%s)", g.Replaced.Exe, fix))
	}
	if n := len(g.Replaced.Libraries); n > 0 {
		out = append(out, fmt.Sprintf("the master maps %d librar(ies) or module(s) since replaced on disk (%s): an upgrade not yet running (%s)",
			n, strings.Join(g.Replaced.Libraries, ", "), fix))
	}
	if n := len(g.Changed); n > 0 {
		out = append(out, fmt.Sprintf("%d file(s) of the configuration changed after the serving generation loaded it (%s, loaded %s, known from its %s): "+
			"it does not serve them (%s)", n, changedNames(g.Changed), g.Loaded.Format(time.DateTime), g.LoadedFrom, fix))
	}
	for _, s := range g.NotServed() {
		out = append(out, fmt.Sprintf("%s serves a certificate for %s that expires %s, but %s holds a newer one for that name: a renewal not served (%s)",
			s.Listener, s.Subject, s.NotAfter.Format(time.DateOnly), s.NotServed, fix))
	}
	for _, s := range g.Expiring(now) {
		out = append(out, fmt.Sprintf("%s serves a certificate for %s that expires %s", s.Listener, s.Subject, s.NotAfter.Format(time.DateTime)))
	}
	if len(g.Old) > 0 {
		out = append(out, fmt.Sprintf("%d process(es) of an older generation still run, draining since %s (%s ago): pids %v",
			len(g.Old), g.DrainingSince().Format(time.DateTime), now.Sub(g.DrainingSince()).Round(time.Second), oldPIDs(g.Old)))
	}
	return out
}

// changedNames lists up to three paths, and how many more.
func changedNames(files []generation.File) string {
	var names []string
	for _, f := range files[:min(len(files), 3)] {
		names = append(names, f.Path)
	}
	if len(files) > 3 {
		names = append(names, fmt.Sprintf("and %d more", len(files)-3))
	}
	return strings.Join(names, ", ")
}

// oldPIDs are the old generation's pids.
func oldPIDs(old []generation.OldProc) []int {
	out := make([]int, len(old))
	for i, o := range old {
		out[i] = o.PID
	}
	return out
}
