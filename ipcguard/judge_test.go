package ipcguard

import (
	"strings"
	"testing"
	"time"
)

const apacheExe = "/usr/sbin/apache2"

var t0 = time.Unix(1_700_000_000, 0)

func proc(pid, ppid int, exe string, start time.Time) Proc {
	return Proc{PID: pid, PPID: ppid, State: 'S', Comm: "p", StartTicks: uint64(start.Unix()), Start: start, Exe: exe}
}

func table(ps ...Proc) ProcTable {
	m := map[int]Proc{}
	for _, p := range ps {
		m[p.PID] = p
	}
	return ProcTable{ByPID: m}
}

// apacheSet is a set with Apache's signature, created and last operated at
// ctime by lastPID.
func apacheSet(id int, ctime time.Time, lastPID int) SemSet {
	return SemSet{Key: 0, ID: id, Perms: 0o600, NSems: 1, UID: 33, GID: 33, CUID: 0, CGID: 0,
		OTime: ctime.Unix(), CTime: ctime.Unix(), Sems: []Sem{{Val: 1, PID: lastPID}}}
}

func TestJudgeSem(t *testing.T) {
	sig := ApacheSignature("apache2", 33, apacheExe)
	master := proc(100, 1, apacheExe, t0)
	child := proc(101, 100, apacheExe, t0.Add(time.Second))
	withMaster := table(master, child)
	old := t0.Add(-time.Hour)
	tests := []struct {
		name    string
		set     SemSet
		sig     *Signature
		facts   Facts
		want    Verdict
		because string // a substring of the deciding proof line
	}{
		{"dead last-op pid, no live apache", apacheSet(1, old, 50), &sig, Facts{Procs: table()}, Orphan, "nothing alive"},
		{"other owner", func() SemSet { s := apacheSet(1, old, 50); s.UID = 1000; return s }(), &sig, Facts{}, Foreign, "owner uid 1000"},
		{"php sysvsem set", func() SemSet {
			s := apacheSet(1, old, 50)
			s.Key, s.NSems, s.Sems = 0x1234, 3, make([]Sem, 3)
			return s
		}(), &sig, Facts{}, Foreign, "key 0x00001234"},
		{"three semaphores", func() SemSet { s := apacheSet(1, old, 50); s.NSems = 3; return s }(), &sig, Facts{}, Foreign, "nsems 3"},
		{"waiters", func() SemSet { s := apacheSet(1, old, 50); s.Sems[0].NCnt = 2; return s }(), &sig, Facts{Procs: table()}, Live, "waiters"},
		{"live last-op pid older than the op", apacheSet(1, old, 60), &sig,
			Facts{Procs: table(proc(60, 1, "/bin/locker", old.Add(-time.Minute)))}, Live, "60 is alive"},
		{"reused last-op pid", apacheSet(1, old, 60), &sig,
			Facts{Procs: table(proc(60, 1, "/bin/other", old.Add(time.Minute)))}, Orphan, "nothing alive"},
		{"zombie last-op pid", apacheSet(1, old, 60), &sig,
			Facts{Procs: table(func() Proc { p := proc(60, 1, "/bin/x", old.Add(-time.Minute)); p.State = 'Z'; return p }())}, Orphan, "nothing alive"},
		{"zombie leader whose other threads still run", apacheSet(1, old, 60), &sig,
			Facts{Procs: table(func() Proc {
				p := proc(60, 1, "/bin/x", old.Add(-time.Minute))
				p.State, p.Threads = 'Z', 3
				return p
			}())}, Live, "60 is alive"},
		{"sempid 0: a process in another PID namespace", apacheSet(1, old, 0), &sig, Facts{Procs: table()}, Unknown, "outside this PID namespace"},
		{"unreadable semaphores", func() SemSet { s := apacheSet(1, old, 50); s.Sems = nil; return s }(), &sig, Facts{}, Unknown, "could not be read"},
		{"no signature", apacheSet(1, old, 50), nil, Facts{Procs: table()}, Unknown, "no service signature"},
		{"before the window of a live master", apacheSet(1, t0.Add(-time.Minute), 50), &sig,
			Facts{Procs: withMaster, Window: 10 * time.Second}, Orphan, "nothing alive"},
		{"within the window of a live master", apacheSet(1, t0.Add(-5*time.Second), 50), &sig,
			Facts{Procs: withMaster, Window: 10 * time.Second}, Unknown, "within the lineage window"},
		{"after a live master started", apacheSet(1, t0.Add(time.Hour), 50), &sig,
			Facts{Procs: withMaster, Window: 10 * time.Second}, Unknown, "within the lineage window"},
		{"attributed to a live master, older than it", apacheSet(7, t0.Add(-time.Hour), 50), &sig,
			Facts{Procs: withMaster, Window: 10 * time.Second, Lineages: []Lineage{{Service: "apache2", Master: master.Key(),
				Objects: []SetStamp{{Kind: KindSem, ID: 7, CTime: t0.Add(-time.Hour).Unix()}}}}}, Live, "safe-restart started"},
		{"lineage known, not attributed, within window", apacheSet(8, t0.Add(-5*time.Second), 50), &sig,
			Facts{Procs: withMaster, Window: 10 * time.Second, Lineages: []Lineage{{Service: "apache2", Master: master.Key(),
				Objects: []SetStamp{{Kind: KindSem, ID: 7, CTime: 1}}}}}, Orphan, "nothing alive"},
		{"lineage known, preexisting, created in the second the master started", apacheSet(8, t0, 50), &sig,
			Facts{Procs: withMaster, Window: 10 * time.Second, Lineages: []Lineage{{Service: "apache2", Master: master.Key(),
				Objects: []SetStamp{{Kind: KindSem, ID: 7, CTime: 1}}, Preexisting: []SetStamp{{Kind: KindSem, ID: 8, CTime: t0.Unix()}}}}}, Orphan, "nothing alive"},
		{"lineage known, created in the second the master started", apacheSet(9, t0, 50), &sig,
			Facts{Procs: withMaster, Window: 10 * time.Second, Lineages: []Lineage{{Service: "apache2", Master: master.Key(),
				Objects: []SetStamp{{Kind: KindSem, ID: 7, CTime: 1}}}}}, Unknown, "after the live master"},
		{"lineage of a dead master is ignored", apacheSet(8, t0.Add(-5*time.Second), 50), &sig,
			Facts{Procs: withMaster, Window: 10 * time.Second, Lineages: []Lineage{{Service: "apache2", Master: ProcKey{PID: 100, StartTicks: 1},
				Objects: []SetStamp{{Kind: KindSem, ID: 7, CTime: 1}}}}}, Unknown, "within the lineage window"},
		{"an orphaned worker lives", apacheSet(1, old, 50), &sig,
			Facts{Procs: table(proc(300, 1, apacheExe, t0)), Window: 10 * time.Second}, Unknown, "orphaned worker"},
		{"exe replaced on disk still counts", apacheSet(1, t0, 50), &sig,
			Facts{Procs: table(proc(100, 1, apacheExe+" (deleted)", t0), proc(101, 100, apacheExe+" (deleted)", t0)), Window: 10 * time.Second}, Unknown, "within the lineage window"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			js := Judge(Snapshot{Sem: []SemSet{tt.set}}, tt.sig, tt.facts)
			if len(js) != 1 {
				t.Fatalf("got %d judgements, want 1", len(js))
			}
			j := js[0]
			last := j.Proof[len(j.Proof)-1]
			if j.Verdict != tt.want || !strings.Contains(last, tt.because) {
				t.Errorf("verdict %s (%q), want %s (%q)\nproof:\n  %s", j.Verdict, last, tt.want, tt.because, strings.Join(j.Proof, "\n  "))
			}
			if j.Verdict == Unknown && j.Settle == "" {
				t.Errorf("unknown verdict without a way to settle it")
			}
		})
	}
}

func TestJudgeOtherKinds(t *testing.T) {
	sig := Signature{Service: "svc", Kinds: []Kind{KindShm, KindMsg, KindPosix}, Key: Any, NSems: Any, Mode: Any,
		UID: 1000, CUID: Any, Exe: "/usr/bin/svc", PosixGlob: "svc.*"}
	old := t0.Add(-time.Hour).Unix()
	procs := table()
	tests := []struct {
		name string
		snap Snapshot
		want Verdict
	}{
		{"shm attached", Snapshot{Shm: []ShmSeg{{ID: 1, UID: 1000, NAttch: 1, CTime: old}}}, Live},
		{"shm detached, creator dead", Snapshot{Shm: []ShmSeg{{ID: 1, UID: 1000, CPID: 5, LPID: 6, CTime: old}}}, Orphan},
		{"shm never attached", Snapshot{Shm: []ShmSeg{{ID: 1, UID: 1000, CPID: 5, CTime: old}}}, Orphan},
		{"shm creator in another PID namespace", Snapshot{Shm: []ShmSeg{{ID: 1, UID: 1000, CTime: old}}}, Unknown},
		{"shm attached by a process in another PID namespace", Snapshot{Shm: []ShmSeg{{ID: 1, UID: 1000, CPID: 5, ATime: old, CTime: old}}}, Unknown},
		{"msg sent by a process in another PID namespace", Snapshot{Msg: []MsgQueue{{ID: 1, UID: 1000, STime: old, CTime: old}}}, Unknown},
		{"shm marked for removal", Snapshot{Shm: []ShmSeg{{ID: 1, UID: 1000, Perms: 0o1600, CTime: old}}}, Live},
		{"shm of another user", Snapshot{Shm: []ShmSeg{{ID: 1, UID: 0, CTime: old}}}, Foreign},
		{"msg with messages", Snapshot{Msg: []MsgQueue{{ID: 1, UID: 1000, QNum: 2, CTime: old}}}, Unknown},
		{"msg empty, users dead", Snapshot{Msg: []MsgQueue{{ID: 1, UID: 1000, LSPID: 5, CTime: old}}}, Orphan},
		{"posix held", Snapshot{Posix: []PosixObject{{Name: "svc.a", UID: 1000, Holders: []Holder{{PID: 9, How: "map"}}}}}, Live},
		{"posix unheld", Snapshot{Posix: []PosixObject{{Name: "svc.a", UID: 1000, CTimeNs: old * 1e9}}}, Orphan},
		{"posix other name", Snapshot{Posix: []PosixObject{{Name: "pg.a", UID: 1000}}}, Foreign},
		{"sem not claimed", Snapshot{Sem: []SemSet{apacheSet(1, t0, 5)}}, Foreign},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := Judge(tt.snap, &sig, Facts{Procs: procs})[0]
			if j.Verdict != tt.want {
				t.Errorf("verdict %s, want %s\nproof:\n  %s", j.Verdict, tt.want, strings.Join(j.Proof, "\n  "))
			}
		})
	}
}
