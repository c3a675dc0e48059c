package ipcguard

import "strconv"

// judgeSem applies DESIGN.md invariant 4 to one semaphore set: signature,
// no waiters, no live last-operation pid older than its operation, no live
// service process that can hold it. Condition 5 (unchanged since the proof)
// is checked again at removal.
func judgeSem(s *SemSet, sig *Signature, procs ProcTable, h *holders) Judgement {
	p := &proof{j: Judgement{Kind: KindSem, ID: s.ID, Key: s.Key, seen: stamp{
		otime: s.OTime, ctime: s.CTime, nsems: s.NSems, key: s.Key, uid: s.UID, cuid: s.CUID, mode: s.Perms,
		pids: semPidHash(s.Sems),
	}}}
	if sig != nil {
		if !sig.claims(KindSem) {
			return p.decide(Foreign, "%s creates no semaphore sets", sig.Service)
		}
		if d := sig.sysvMismatch(s.Key, s.Perms, s.UID, s.CUID); d != "" {
			return p.decide(Foreign, "not %s's: %s", sig.Service, d)
		}
		if sig.NSems != Any && s.NSems != sig.NSems {
			return p.decide(Foreign, "not %s's: nsems %d, want %d", sig.Service, s.NSems, sig.NSems)
		}
		p.add(h.sigLine)
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
	opTime := max(s.OTime, s.CTime) // the last semop, SETVAL or exit-undo is no later than this
	for i, sem := range s.Sems {
		_, live, line := lastUser(procs, "semaphore "+strconv.Itoa(i)+" last-operation pid", sem.PID, opTime)
		if live {
			return p.decideLine(Live, line), true
		}
		p.add(line)
	}
	return Judgement{}, false
}
