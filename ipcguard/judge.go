package ipcguard

import (
	"fmt"
	"strconv"
	"time"
)

// Verdict is what ipcguard concluded about one object.
type Verdict string

// The verdicts. Only Orphan objects are ever removed.
const (
	Orphan  Verdict = "orphan"  // proven left behind by a dead generation: safe to remove
	Live    Verdict = "live"    // proven in use
	Foreign Verdict = "foreign" // not the service's: never touched
	Unknown Verdict = "unknown" // neither could be proven: kept
)

// Judgement is the verdict on one object with the facts that prove it.
type Judgement struct {
	Kind    Kind    `json:"kind"`
	ID      int     `json:"id"`             // SysV id
	Name    string  `json:"name,omitempty"` // /dev/shm name
	Key     int32   `json:"key"`
	Verdict Verdict `json:"verdict"`
	// Proof lists the facts checked, in order; for a verdict other than
	// Orphan the last line is the one that decided it.
	Proof []string `json:"proof"`
	// Settle says what would settle an Unknown verdict.
	Settle string `json:"settle,omitempty"`

	seen stamp // the object's state when judged, compared again before removal
}

// stamp is the part of an object's state that a removal re-checks.
type stamp struct {
	otime, ctime int64
	nsems        int
	key          int32
	uid, cuid    uint32
	mode         uint32
	inode, dev   uint64
	// pids hashes the sets' last-operation pids: SysV times have a 1 s
	// granularity, so an operation within the second of the proof shows
	// only as a new sempid.
	pids uint64
}

// pidHash is an FNV-1a hash over a sequence of pids.
type pidHash uint64

func newPidHash() pidHash { return 14695981039346656037 }

func (h pidHash) add(pid int) pidHash {
	for i := 0; i < 4; i++ {
		h ^= pidHash(byte(pid >> (8 * i)))
		h *= 1099511628211
	}
	return h
}

func semPidHash(sems []Sem) uint64 {
	h := newPidHash()
	for _, s := range sems {
		h = h.add(s.PID)
	}
	return uint64(h)
}

// Facts are what a judgement needs beyond the objects: the live processes
// (read after the snapshot, so that a process that operated on an object
// before the snapshot is in the table if it is still alive) and what
// safe-restart knows about the masters it started.
type Facts struct {
	Procs ProcTable
	// Window bounds how long a master's start takes before it detaches:
	// without a lineage, every object created after (master start - Window)
	// may be that master's and is kept.
	Window time.Duration
	// Lineages are the objects attributed to masters safe-restart started.
	Lineages []Lineage
}

// clockSlack absorbs the 1 s granularity of SysV times and of process
// start times computed from /proc/stat btime. Every comparison leans
// towards keeping an object.
const clockSlack = 2 * time.Second

// Judge gives a verdict on every object of s. sig may be nil: then nothing
// is foreign or orphan, only live or unknown. A proof says "matches
// apache2's signature" without repeating it; callers print sig.String()
// once. Judge is pure.
func Judge(s Snapshot, sig *Signature, f Facts) []Judgement {
	h := newHolders(sig, f)
	out := make([]Judgement, 0, len(s.Sem)+len(s.Shm)+len(s.Msg)+len(s.Posix))
	for i := range s.Sem {
		out = append(out, judgeSem(&s.Sem[i], sig, f.Procs, h))
	}
	for i := range s.Shm {
		out = append(out, judgeShm(&s.Shm[i], sig, f.Procs, h))
	}
	for i := range s.Msg {
		out = append(out, judgeMsg(&s.Msg[i], sig, f.Procs, h))
	}
	for i := range s.Posix {
		out = append(out, judgePosix(&s.Posix[i], sig, h))
	}
	return out
}

// proof accumulates the lines of one judgement.
type proof struct{ j Judgement }

// ok adds a checked fact.
func (p *proof) ok(format string, a ...any) { p.add(fmt.Sprintf(format, a...)) }

// add adds a checked fact already formatted. Judge runs once per object, up
// to SEMMNI (32000) times a call, so the common lines skip Sprintf.
func (p *proof) add(line string) { p.j.Proof = append(p.j.Proof, line) }

// decideLine is decide with a formatted line.
func (p *proof) decideLine(v Verdict, line string) Judgement {
	p.add(line)
	p.j.Verdict = v
	return p.j
}

func (p *proof) decide(v Verdict, format string, a ...any) Judgement {
	p.ok(format, a...)
	p.j.Verdict = v
	return p.j
}

func (p *proof) unknown(settle, format string, a ...any) Judgement {
	p.j.Settle = settle
	return p.decide(Unknown, format, a...)
}

// pidAt is a pid the kernel recorded for an operation at or before at
// (Unix seconds). done says an operation is known to have happened, so a
// pid of 0 cannot mean "none".
type pidAt struct {
	what string
	pid  int
	at   int64
	done bool
}

// pidsInUse decides Live when one of pids names a process that is alive
// and started no later than its operation, and Unknown when one is 0 after
// an operation: the kernel reports 0 for a process outside the caller's PID
// namespace (a containerised server sharing the IPC namespace), whose
// liveness cannot be seen. A dead pid, or a live one that started after the
// operation (a reused pid), proves nothing.
func pidsInUse(p *proof, procs ProcTable, pids ...pidAt) (Judgement, bool) {
	for _, x := range pids {
		if x.pid == 0 && x.done {
			return p.unknown("run safe-restart in the PID namespace of the processes that use it",
				"%s: 0, so the process is outside this PID namespace (or it never operated): it may be alive", x.what), true
		}
		live, line := lastUser(procs, x)
		if live {
			return p.decideLine(Live, line), true
		}
		p.add(line)
	}
	return Judgement{}, false
}

// lastUser checks one recorded pid; see pidsInUse.
func lastUser(procs ProcTable, x pidAt) (bool, string) {
	what, pid := x.what, x.pid
	if pid == 0 {
		return false, what + ": none recorded"
	}
	p, ok := procs.Live(pid)
	if !ok {
		return false, what + " " + strconv.Itoa(pid) + ": not alive"
	}
	op := time.Unix(x.at, 0)
	if p.Start.After(op.Add(clockSlack)) {
		return false, fmt.Sprintf("%s %d: reused (now %s, started %s, after the operation at %s)",
			what, pid, p.Comm, stamptime(p.Start), stamptime(op))
	}
	return true, fmt.Sprintf("%s %d is alive (%s, started %s, no later than the operation at %s)",
		what, pid, p.Comm, stamptime(p.Start), stamptime(op))
}

func stamptime(t time.Time) string { return t.UTC().Format(time.RFC3339) }
