package ipcguard

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/safe-restart/safe-restart/internal/atomicfile"
)

// SetStamp names one SysV object across id reuse: its id and creation time.
type SetStamp struct {
	Kind  Kind  `json:"kind"`
	ID    int   `json:"id"`
	CTime int64 `json:"ctime"`
}

// Lineage records the IPC objects that appeared while safe-restart started
// a master: the exact attribution that no SysV field can give (REFERENCE.md
// §2: sempid names the last caller, not the owner). Apache creates some sets
// (ssl-cache) in the starting process before it detaches, so a live master
// can be younger than a set it uses; with a lineage that set is known to be
// the master's, and every other set older than the master is known not to be.
type Lineage struct {
	Service string     `json:"service"`
	Master  ProcKey    `json:"master"`
	Objects []SetStamp `json:"objects"` // created during the start: the master's
	// Preexisting are objects that existed before the start but were
	// created within the clock slack of it, where times cannot tell them
	// from the master's own (SysV times have 1 s granularity). A set leaked
	// by a predecessor killed a moment before the start is one.
	Preexisting []SetStamp `json:"preexisting,omitempty"`
}

// NewLineage records what a start of master did: the objects that appeared
// between the snapshots before and after it, and the recent objects that
// were already there.
func NewLineage(service string, master ProcKey, before, after Snapshot) Lineage {
	l := Lineage{Service: service, Master: master, Objects: Attribute(before, after)}
	recent := before.Taken.Add(-clockSlack).Unix()
	for _, c := range index(before) {
		if c.Kind != KindPosix && c.CTime >= recent {
			l.Preexisting = append(l.Preexisting, SetStamp{Kind: c.Kind, ID: c.ID, CTime: c.CTime})
		}
	}
	return l
}

// Attribute returns the SysV objects present in after but not in before:
// the ones created between the two snapshots.
func Attribute(before, after Snapshot) []SetStamp {
	d := Diff(before, after)
	out := make([]SetStamp, 0, len(d.Added))
	for _, c := range d.Added {
		if c.Kind != KindPosix {
			out = append(out, SetStamp{Kind: c.Kind, ID: c.ID, CTime: c.CTime})
		}
	}
	return out
}

// SaveLineage writes l to dir as <service>.<pid>.json, atomically, creating
// dir (mode 0700) if needed.
func SaveLineage(dir string, l Lineage) error {
	if !validServiceName(l.Service) {
		return fmt.Errorf("save lineage: bad service name %q", l.Service)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save lineage: %w", err)
	}
	data, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return fmt.Errorf("save lineage: %w", err)
	}
	if err := atomicfile.WriteFile(lineagePath(dir, l.Service, l.Master.PID), data, 0o600); err != nil {
		return fmt.Errorf("save lineage: %w", err)
	}
	return nil
}

// lineagePath names the lineage file of one master of service in dir.
func lineagePath(dir, service string, pid int) string {
	return filepath.Join(dir, fmt.Sprintf("%s.%d.json", service, pid))
}

// LoadLineages reads every lineage of service in dir. A missing dir means
// none. A file that does not parse is an error naming it: a lineage that
// cannot be read must not silently widen what counts as orphan.
func LoadLineages(dir, service string) ([]Lineage, error) {
	paths, err := filepath.Glob(filepath.Join(dir, service+".*.json"))
	if err != nil {
		return nil, fmt.Errorf("load lineages: %w", err)
	}
	var out []Lineage
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("load lineage: %w", err)
		}
		var l Lineage
		if err := json.Unmarshal(data, &l); err != nil {
			return nil, fmt.Errorf("%w: lineage %s: %w", ErrMalformed, p, err)
		}
		if l.Service == service { // the glob also matches "SERVICE.x.N.json" of a service "SERVICE.x"
			out = append(out, l)
		}
	}
	return out, nil
}

// PruneLineages removes the lineage files of service whose master is no
// longer alive in procs, and returns how many it removed.
func PruneLineages(dir, service string, procs ProcTable) (int, error) {
	ls, err := LoadLineages(dir, service)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, l := range ls {
		if p, ok := procs.Live(l.Master.PID); ok && p.StartTicks == l.Master.StartTicks {
			continue
		}
		if err := os.Remove(lineagePath(dir, l.Service, l.Master.PID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return n, fmt.Errorf("prune lineage: %w", err)
		}
		n++
	}
	return n, nil
}

// validServiceName rejects names that would escape the lineage directory.
func validServiceName(s string) bool {
	return s != "" && !strings.ContainsAny(s, "/*?[\\") && s != "." && s != ".."
}
