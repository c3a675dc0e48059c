package ipcguard

import (
	"fmt"
	"path/filepath"
	"time"
)

// holders answers condition 4 of README.md invariant 4: can a live process
// of the service hold an object? It sorts the service's top-level processes
// (those whose parent is not of the service) into masters, which have
// children of the service, and loose processes, which have none: an
// orphaned worker of a killed master, or a master between generations.
type holders struct {
	sig        *Signature
	sigLine    string // "matches apache2's signature", formatted once
	noneLine   string // "no live process runs EXE or is named like it", formatted once
	window     time.Duration
	any        bool                 // some live process may run the service (see ByExe)
	masters    []Proc               // top-level, with service children
	loose      []Proc               // top-level, without service children
	lineage    map[ProcKey]Lineage  // lineages of live masters
	attributed map[SetStamp]ProcKey // object -> live master that created it
	before     map[SetStamp]ProcKey // object -> live master started after it existed
}

func newHolders(sig *Signature, f Facts) *holders {
	h := &holders{sig: sig, window: f.Window, lineage: map[ProcKey]Lineage{},
		attributed: map[SetStamp]ProcKey{}, before: map[SetStamp]ProcKey{}}
	if sig == nil {
		return h
	}
	h.sigLine = "matches " + sig.Service + "'s signature"
	h.noneLine = "no live process runs " + sig.Exe + " or is named " + filepath.Base(sig.Exe)
	if sig.Exe == "" {
		return h
	}
	svc := f.Procs.ByExe(sig.Exe)
	h.any = len(svc) > 0
	isSvc := make(map[int]bool, len(svc))
	for _, p := range svc {
		isSvc[p.PID] = true
	}
	hasChild := map[int]bool{}
	for _, p := range svc {
		if isSvc[p.PPID] {
			hasChild[p.PPID] = true
		}
	}
	for _, p := range svc {
		switch {
		case isSvc[p.PPID]:
		case hasChild[p.PID]:
			h.masters = append(h.masters, p)
		default:
			h.loose = append(h.loose, p)
		}
	}
	h.addLineages(f)
	return h
}

// addLineages keeps the lineages whose master is still the same live process.
func (h *holders) addLineages(f Facts) {
	for _, l := range f.Lineages {
		p, ok := f.Procs.Live(l.Master.PID)
		if !ok || p.StartTicks != l.Master.StartTicks || (h.sig != nil && l.Service != h.sig.Service) {
			continue
		}
		h.lineage[l.Master] = l
		for _, o := range l.Objects {
			h.attributed[o] = l.Master
		}
		for _, o := range l.Preexisting {
			h.before[o] = l.Master
		}
	}
}

// check decides the judgement when a live service process may hold the
// object created at ctime; otherwise it adds the proof lines and returns
// false.
func (h *holders) check(p *proof, kind Kind, id int, ctime int64) (Judgement, bool) {
	svc := h.sig.Service
	if h.sig.Exe == "" {
		return p.unknown("give the service's executable (--exe, or --service)",
			"no executable in the signature: cannot tell which live processes may hold it"), true
	}
	if m, ok := h.attributed[SetStamp{Kind: kind, ID: id, CTime: ctime}]; ok {
		return p.decide(Live, "created when safe-restart started the live master %d", m.PID), true
	}
	created := time.Unix(ctime, 0)
	if len(h.loose) > 0 {
		l := h.loose[0]
		return p.unknown(fmt.Sprintf("stop the orphaned workers first: safe-restart stop %s", svc),
			"live %s pid %d (started %s) has no parent or child of the service: an orphaned worker, "+
				"or a master between generations, may hold any of its objects", filepath.Base(h.sig.Exe), l.PID, stamptime(l.Start)), true
	}
	obj := SetStamp{Kind: kind, ID: id, CTime: ctime}
	for _, m := range h.masters {
		if j, ok := h.checkMaster(p, m, obj, created); ok {
			return j, true
		}
	}
	if !h.any {
		p.add(h.noneLine)
	}
	return Judgement{}, false
}

func (h *holders) checkMaster(p *proof, m Proc, obj SetStamp, created time.Time) (Judgement, bool) {
	settle := fmt.Sprintf("safe-restart restart %s attributes the sets of the master it starts exactly", h.sig.Service)
	if l, ok := h.lineage[m.Key()]; ok {
		if h.before[obj] == m.Key() {
			p.ok("existed before safe-restart started the live master %d, and is not among the %d objects that start created",
				m.PID, len(l.Objects))
			return Judgement{}, false
		}
		if !created.Before(m.Start.Add(-clockSlack)) {
			return p.unknown(settle, "created %s, after the live master %d started (%s): a reload of it may have created it",
				stamptime(created), m.PID, stamptime(m.Start)), true
		}
		p.ok("not among the %d objects the live master %d created when safe-restart started it, and older than it",
			len(l.Objects), m.PID)
		return Judgement{}, false
	}
	if !created.Before(m.Start.Add(-h.window - clockSlack)) {
		return p.unknown(settle+", or lower --lineage-window",
			"created %s, within the lineage window (%s) of the live master %d's start (%s): it may be that master's",
			stamptime(created), h.window, m.PID, stamptime(m.Start)), true
	}
	p.ok("created %s, more than the lineage window (%s) before the live master %d started (%s)",
		stamptime(created), h.window, m.PID, stamptime(m.Start))
	return Judgement{}, false
}
