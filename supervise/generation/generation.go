package generation

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/server"
	"github.com/safe-restart/safe-restart/supervise/sock"
)

// Input is what Read judges: a server's master, as ReadStatus found it.
type Input struct {
	Profile   server.Profile
	Config    server.RunConfig // the config test's report: the files on disk now
	Master    ipcguard.Proc
	Tree      []ipcguard.Proc // the master's descendants (proc.Descendants)
	Listeners []sock.Listener // the master's listeners
	// Log is the master's error log since it started (verify.MasterLog),
	// "" when it cannot be read.
	Log string
	// Timeout bounds each TLS handshake (default 2 s).
	Timeout time.Duration
	// ProcRoot is the /proc to read ("" is proc.DefaultRoot).
	ProcRoot string
}

// Report is what the serving generation runs that is no longer on disk,
// and the older generation still alive.
type Report struct {
	// Loaded is no earlier than the moment the serving generation read its
	// configuration; LoadedFrom says how it is known: "error log" (the
	// line the master logs once it loaded: Apache, php-fpm), "workers" (the
	// youngest of the master's workers not draining, which it starts
	// after: nginx, or a log that does not say; an older generation's
	// worker may not have read its order to drain yet, and a worker
	// started later, respawned or added, makes changes before it go
	// unseen; when only older-generation children are left, as busy
	// Apache children after a graceful restart without a dating log, it
	// is too early), or "master start"
	// (exact for a master never reloaded; a reload nothing shows makes
	// files changed before it look newer than the generation).
	Loaded     time.Time `json:"loaded"`
	LoadedFrom string    `json:"loaded_from"`
	// Changed are the files the configuration names (its own, its
	// includes, certificates and keys) modified after Loaded.
	Changed []File `json:"changed_files"`
	// Replaced is the master's code replaced on disk: its binary, or
	// libraries and modules it maps.
	Replaced proc.Replaced `json:"replaced"`
	// TLS is the certificate each TLS listener serves (one entry per
	// distinct certificate a listener served to the names tried).
	TLS []Served `json:"tls"`
	// Old are the processes of an older generation still alive: Apache's
	// children finishing their requests after a graceful restart, nginx's
	// workers "shutting down".
	Old []OldProc `json:"old_generation"`
	// Unread names what could not be read; the rest stands.
	Unread []string `json:"unread,omitempty"`
}

// File is a file modified after the generation loaded.
type File struct {
	Path     string    `json:"path"`
	Modified time.Time `json:"modified"`
}

// OldProc is a process of an older generation.
type OldProc struct {
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
	// Connections are the TCP connections to the master's listeners it
	// holds open, -1 when they cannot be counted.
	Connections int `json:"connections"`
}

// Read reads in's master and the files its configuration names. It never
// fails: what it cannot read is in Report.Unread.
func Read(in Input) Report {
	in.ProcRoot = proc.RootOr(in.ProcRoot)
	in.Timeout = cmp.Or(in.Timeout, 2*time.Second)
	r := Report{Changed: []File{}, TLS: []Served{}, Old: []OldProc{}}
	var lower time.Time
	draining := drainingChildren(in)
	r.Loaded, lower, r.LoadedFrom = loaded(in, draining)
	r.Old = oldGeneration(in, draining, lower, r.LoadedFrom == "error log")
	r.Changed, r.Unread = changedSince(append(slices.Clone(in.Config.Files), in.Config.TLSFiles...), r.Loaded)
	var err error
	if r.Replaced, err = proc.ReplacedCode(in.ProcRoot, in.Master.PID); err != nil {
		r.Unread = append(r.Unread, err.Error())
	}
	if in.Profile.Driver.SpeaksHTTP() {
		var unread []string
		r.TLS, unread = servedCerts(in.Listeners, in.Config.TLSFiles, in.Timeout)
		r.Unread = append(r.Unread, unread...)
	}
	return r
}

// tick is the resolution of a process's start time (one USER_HZ tick).
const tick = 10 * time.Millisecond

// spawnSlack is how long after its load line a master may take to start
// the new generation's children: a child started more than this before
// the line is of the older generation.
const spawnSlack = 100 * time.Millisecond

// loaded returns when the serving generation read its configuration: upper
// no earlier than that moment (files modified after it were not read),
// lower no later than the new generation's first child (children started
// before it are older), and how it is known (see Report.LoadedFrom).
func loaded(in Input, draining map[int]bool) (upper, lower time.Time, from string) {
	if l, ok := in.Profile.Driver.(server.LoadLogger); ok && in.Log != "" {
		if at, res, ok := l.LoadedLogged(in.Log, in.Master); ok {
			return at.Add(res + tick), at.Add(-spawnSlack), "error log"
		}
	}
	start := proc.StartedAt(in.Master)
	var youngest time.Time
	for _, c := range children(in.Tree, in.Master) {
		if s := proc.StartedAt(c); !draining[c.PID] && s.After(youngest) {
			youngest = s
		}
	}
	if !youngest.IsZero() {
		return youngest.Add(tick), start, "workers"
	}
	return start.Add(tick), start, "master start"
}

// changedSince returns the files modified after t (the later of the
// modification and change times, of a symbolic link and of what it points
// to: a renewal may swap either), and the files it could not read.
func changedSince(paths []string, t time.Time) ([]File, []string) {
	out := []File{}
	var unread []string
	for _, p := range paths {
		m, err := modified(p)
		if err != nil {
			unread = append(unread, err.Error())
			continue
		}
		if m.After(t) && !slices.ContainsFunc(out, func(f File) bool { return f.Path == p }) {
			out = append(out, File{Path: p, Modified: m})
		}
	}
	return out, unread
}

// modified is the latest of path's modification and change times, and of
// the link's own when path is a symbolic link.
func modified(path string) (time.Time, error) {
	var latest time.Time
	for _, stat := range []func(string, *syscall.Stat_t) error{syscall.Lstat, syscall.Stat} {
		var st syscall.Stat_t
		if err := stat(path, &st); err != nil {
			if errors.Is(err, syscall.ENOENT) {
				return latest, fmt.Errorf("%s: %w", path, os.ErrNotExist)
			}
			return latest, &os.PathError{Op: "stat", Path: path, Err: err}
		}
		for _, ts := range []syscall.Timespec{st.Mtim, st.Ctim} {
			if t := time.Unix(ts.Unix()); t.After(latest) {
				latest = t
			}
		}
	}
	return latest, nil
}

// children returns the master's live direct children in tree.
func children(tree []ipcguard.Proc, master ipcguard.Proc) []ipcguard.Proc {
	var out []ipcguard.Proc
	for _, p := range tree {
		if p.PPID == master.PID && p.Alive() {
			out = append(out, p)
		}
	}
	return out
}

// drainingChildren returns the master's children whose title says they
// drain (server.Drainer), each command line read once; none for a server
// whose titles do not say.
func drainingChildren(in Input) map[int]bool {
	out := map[int]bool{}
	d, ok := in.Profile.Driver.(server.Drainer)
	if !ok {
		return out
	}
	for _, c := range children(in.Tree, in.Master) {
		out[c.PID] = d.Draining(strings.Join(proc.Cmdline(in.ProcRoot, c.PID), " "))
	}
	return out
}
