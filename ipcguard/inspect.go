package ipcguard

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// InspectOptions says what Inspect reads and judges by.
type InspectOptions struct {
	Source    Source
	Signature *Signature // nil: no service; nothing is judged foreign or orphan
	// Window is the lineage window (see Facts.Window).
	Window time.Duration
	// LineageDir holds the lineages of the masters safe-restart started;
	// "" means none are known.
	LineageDir string
}

// Report is one inspection: the snapshot, the live processes read right
// after it, and a verdict with its proof for every object.
type Report struct {
	Signature  *Signature    `json:"signature,omitempty"` // what the objects were judged by
	Window     time.Duration `json:"lineage_window_ns"`
	Snapshot   Snapshot      `json:"snapshot"`
	Judgements []Judgement   `json:"objects"`
	Procs      ProcTable     `json:"-"`
}

// Inspect takes a snapshot and assesses it (see Assess).
func Inspect(ctx context.Context, o InspectOptions) (Report, error) {
	snap, err := Take(ctx, o.Source)
	if err != nil {
		return Report{Snapshot: snap}, err
	}
	return Assess(ctx, snap, o)
}

// Assess reads the process table (after the snapshot was taken: see
// Facts), loads the service's lineages, and judges every object of snap.
func Assess(ctx context.Context, snap Snapshot, o InspectOptions) (Report, error) {
	r := Report{Snapshot: snap, Signature: o.Signature, Window: o.Window}
	var err error
	if r.Procs, err = ReadProcTable(o.Source.procRoot()); err != nil {
		return r, err
	}
	f := Facts{Procs: r.Procs, Window: o.Window}
	if o.Signature != nil && o.LineageDir != "" {
		if !validServiceName(o.Signature.Service) {
			return r, fmt.Errorf("inspect: bad service name %q", o.Signature.Service)
		}
		if f.Lineages, err = LoadLineages(o.LineageDir, o.Signature.Service); err != nil {
			return r, err
		}
	}
	r.Judgements = Judge(r.Snapshot, o.Signature, f)
	return r, ctx.Err()
}

// Count returns how many objects got each verdict.
func (r Report) Count() map[Verdict]int {
	m := map[Verdict]int{}
	for _, j := range r.Judgements {
		m[j.Verdict]++
	}
	return m
}

// Orphans returns the judgements with verdict Orphan, sorted by kind and id.
func (r Report) Orphans() []Judgement {
	var out []Judgement
	for _, j := range r.Judgements {
		if j.Verdict == Orphan {
			out = append(out, j)
		}
	}
	sort.SliceStable(out, func(a, b int) bool {
		if out[a].Kind != out[b].Kind {
			return out[a].Kind < out[b].Kind
		}
		return out[a].ID < out[b].ID
	})
	return out
}
