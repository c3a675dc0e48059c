package ipcguard

import "strconv"

// judgeSem applies README.md invariant 4 to one semaphore set: signature,
// no waiters, no live last-operation pid older than its operation, no live
// service process that can hold it. Condition 5 (unchanged since the proof)
// is checked again at removal.
func judgeSem(s *SemSet, sig *Signature, procs ProcTable, h *holders) Judgement {
	p := &proof{j: Judgement{Kind: KindSem, ID: s.ID, Key: s.Key, seen: stamp{
		otime: s.OTime, ctime: s.CTime, nsems: s.NSems, key: s.Key, uid: s.UID, cuid: s.CUID, mode: s.Perms,
		pids: semPidHash(s.Sems),
	}}}
	if j, ok := sysvForeign(p, h, KindSem, s.Key, s.Perms, s.UID, s.CUID, s.NSems); ok {
		return j
	}
	if s.Sems == nil {
		return p.unknown("run as root, or as the set's owner", "its semaphores could not be read (semctl)")
	}
	if j, ok := semInUse(p, s, procs); ok {
		return j
	}
	return finish(p, sig, h, KindSem, s.ID, s.CTime)
}

// semInUse decides Live when some task waits on the set or a semaphore's
// last operation was done by a process that is still alive.
func semInUse(p *proof, s *SemSet, procs ProcTable) (Judgement, bool) {
	for i, sem := range s.Sems {
		if sem.NCnt+sem.ZCnt > 0 {
			return p.decide(Live, "semaphore %d has waiters (GETNCNT %d, GETZCNT %d)", i, sem.NCnt, sem.ZCnt), true
		}
	}
	p.add("no waiters on its " + strconv.Itoa(len(s.Sems)) + " semaphore(s) (GETNCNT = GETZCNT = 0)")
	// The last semop, SETVAL or exit-undo is no later than this. A sempid of
	// 0 counts as an operation by a process in another PID namespace: a set
	// never operated on (semget alone) also shows 0, and the two cannot be
	// told apart, so such a set stays unknown.
	opTime := max(s.OTime, s.CTime)
	pids := make([]pidAt, len(s.Sems))
	for i, sem := range s.Sems {
		pids[i] = pidAt{"semaphore " + strconv.Itoa(i) + " last-operation pid", sem.PID, opTime, true}
	}
	if j, ok := pidsInUse(p, procs, pids...); ok {
		return j, true
	}
	return Judgement{}, false
}
