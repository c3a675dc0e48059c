package ipcguard

import (
	"context"
	"fmt"
	"time"
)

// Snapshot is the IPC state of one IPC namespace at one moment. It
// marshals to JSON for `safe-restart ipc ls --json` and `ipc diff`.
type Snapshot struct {
	Taken  time.Time     `json:"taken"`
	Limits Limits        `json:"limits"`
	Usage  Usage         `json:"usage"`
	Sem    []SemSet      `json:"sem"`
	Shm    []ShmSeg      `json:"shm"`
	Msg    []MsgQueue    `json:"msg"`
	Posix  []PosixObject `json:"posix"`
}

// Usage counts the objects in use against the kernel's limits.
type Usage struct {
	SemSets   int     `json:"sem_sets"`
	Sems      int     `json:"sems"`
	ShmSegs   int     `json:"shm_segs"`
	MsgQueues int     `json:"msg_queues"`
	SemSetPct float64 `json:"sem_sets_pct"` // SemSets / SEMMNI
	SemsPct   float64 `json:"sems_pct"`     // Sems / SEMMNS
}

// SemSetsFree is how many more semaphore sets semget can create before it
// fails with ENOSPC (Apache's AH00023).
func (s Snapshot) SemSetsFree() int { return s.Limits.SEMMNI - s.Usage.SemSets }

// Source says where Take reads. The zero value reads the host's /proc and
// /dev/shm.
type Source struct {
	ProcRoot string // default "/proc"
	ShmDir   string // default "/dev/shm"
	// NoSemctl skips the per-semaphore semctl reads (for a ProcRoot that is
	// not the live kernel's, in tests). Sets then judge as unknown.
	NoSemctl bool
}

func (src Source) procRoot() string { return or(src.ProcRoot, "/proc") }
func (src Source) shmDir() string   { return or(src.ShmDir, "/dev/shm") }

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// semTable lists the semaphore sets: from the kernel directly when reading
// the live /proc (see statSemTable), else by parsing ProcRoot/sysvipc/sem.
func (src Source) semTable() ([]SemSet, error) {
	if src.procRoot() == "/proc" && !src.NoSemctl {
		if sets, ok, err := statSemTable(); ok && err == nil {
			return sets, nil
		}
	}
	return ReadSemTable(src.procRoot())
}

// Take reads every SysV object, the POSIX objects in /dev/shm with their
// holders, and the kernel limits. A set that vanishes while it is read is
// left out; a set whose semaphores cannot be read keeps Sems nil.
func Take(ctx context.Context, src Source) (Snapshot, error) {
	s := Snapshot{Taken: time.Now()}
	var err error
	if s.Limits, err = ReadLimits(src.procRoot()); err != nil {
		return s, err
	}
	if s.Sem, err = src.semTable(); err != nil {
		return s, err
	}
	if !src.NoSemctl {
		s.Sem = readSems(ctx, s.Sem)
	}
	if s.Shm, err = ReadShmTable(src.procRoot()); err != nil {
		return s, err
	}
	if s.Msg, err = ReadMsgTable(src.procRoot()); err != nil {
		return s, err
	}
	if s.Posix, err = ReadPosix(src.shmDir(), src.procRoot()); err != nil {
		return s, err
	}
	s.Usage = usage(s)
	return s, ctx.Err()
}

// readSems fills Sems of each set through semctl, dropping sets that were
// removed since /proc was read. On cancellation the rest keep Sems nil.
func readSems(ctx context.Context, sets []SemSet) []SemSet {
	gone := make([]bool, len(sets))
	forEach(len(sets), func(i int) {
		if i%1024 == 0 && ctx.Err() != nil {
			return
		}
		sems, err := semRead(sets[i].ID, sets[i].NSems)
		gone[i] = err != nil && isGone(err)
		sets[i].Sems = sems
	})
	out := sets[:0]
	for i := range sets {
		if !gone[i] {
			out = append(out, sets[i])
		}
	}
	return out
}

func usage(s Snapshot) Usage {
	u := Usage{SemSets: len(s.Sem), ShmSegs: len(s.Shm), MsgQueues: len(s.Msg)}
	for _, set := range s.Sem {
		u.Sems += set.NSems
	}
	u.SemSetPct = pct(u.SemSets, s.Limits.SEMMNI)
	u.SemsPct = pct(u.Sems, s.Limits.SEMMNS)
	return u
}

func pct(n, of int) float64 {
	if of <= 0 {
		return 0
	}
	return 100 * float64(n) / float64(of)
}

// SemHeadroom reads the kernel's own count of sets in use (SEM_INFO) and
// SEMMNI, without reading every set: a cheap preflight before a start.
func SemHeadroom(src Source) (inUse, limit int, err error) {
	lim, err := ReadLimits(src.procRoot())
	if err != nil {
		return 0, 0, err
	}
	sets, _, err := semUsage()
	if err != nil {
		return 0, 0, fmt.Errorf("sem headroom: %w", err)
	}
	return sets, lim.SEMMNI, nil
}
