package ipcguard

// shmDest is the SHM_DEST flag in shm perms: removal already requested,
// the kernel frees the segment at its last detach.
const shmDest = 0o1000

// judgeShm: a segment is an orphan only when it matches, nobody is
// attached, its creator and last attacher are dead or reused, and no live
// service process can hold it.
func judgeShm(s *ShmSeg, sig *Signature, procs ProcTable, h *holders) Judgement {
	p := &proof{j: Judgement{Kind: KindShm, ID: s.ID, Key: s.Key, seen: stamp{
		otime: max(s.ATime, s.DTime), ctime: s.CTime, key: s.Key, uid: s.UID, cuid: s.CUID, mode: s.Perms,
	}}}
	if j, ok := sysvForeign(p, h, KindShm, s.Key, s.Perms, s.UID, s.CUID, Any); ok {
		return j
	}
	if s.Perms&shmDest != 0 {
		return p.decide(Live, "already marked for removal (SHM_DEST): the kernel frees it at the last detach")
	}
	if s.NAttch > 0 {
		return p.decide(Live, "%d process(es) attached (nattch)", s.NAttch)
	}
	p.ok("nobody attached (nattch 0)")
	if j, ok := pidsInUse(p, procs, pidAt{"creator pid", s.CPID, s.CTime, true},
		pidAt{"last attach/detach pid", s.LPID, max(s.ATime, s.DTime, s.CTime), s.ATime != 0 || s.DTime != 0}); ok {
		return j
	}
	return finish(p, sig, h, KindShm, s.ID, s.CTime)
}

// judgeMsg: message queues are claimed only by a signature that names
// them, and a queue that still holds messages is never an orphan.
func judgeMsg(q *MsgQueue, sig *Signature, procs ProcTable, h *holders) Judgement {
	p := &proof{j: Judgement{Kind: KindMsg, ID: q.ID, Key: q.Key, seen: stamp{
		otime: max(q.STime, q.RTime), ctime: q.CTime, key: q.Key, uid: q.UID, cuid: q.CUID, mode: q.Perms,
	}}}
	if j, ok := sysvForeign(p, h, KindMsg, q.Key, q.Perms, q.UID, q.CUID, Any); ok {
		return j
	}
	if q.QNum > 0 {
		return p.unknown("drain or inspect the queue first",
			"holds %d message(s), %d bytes, that a restarted reader may expect", q.QNum, q.CBytes)
	}
	p.ok("empty (qnum 0)")
	if j, ok := pidsInUse(p, procs, pidAt{"last msgsnd pid", q.LSPID, max(q.STime, q.CTime), q.STime != 0},
		pidAt{"last msgrcv pid", q.LRPID, max(q.RTime, q.CTime), q.RTime != 0}); ok {
		return j
	}
	return finish(p, sig, h, KindMsg, q.ID, q.CTime)
}

// judgePosix: a /dev/shm object is an orphan only when it matches the
// signature's name glob and owner, and no live process maps it or holds
// an fd on it.
func judgePosix(o *PosixObject, sig *Signature, h *holders) Judgement {
	p := &proof{j: Judgement{Kind: KindPosix, Name: o.Name, seen: stamp{
		ctime: o.CTimeNs, otime: o.MTimeNs, uid: o.UID, mode: o.Mode, inode: o.Inode, dev: o.Dev,
	}}}
	if sig != nil {
		if !sig.claims(KindPosix) {
			return p.decide(Foreign, "%s creates no POSIX objects", sig.Service)
		}
		if d := sig.posixMismatch(o); d != "" {
			return p.decide(Foreign, "not %s's: %s", sig.Service, d)
		}
		p.add(h.sigLine)
	}
	for _, hd := range o.Holders {
		if hd.How != HowUnreadable {
			return p.decide(Live, "held by live pid %d (%s); %d holder(s) in all", hd.PID, hd.How, len(o.Holders))
		}
	}
	if len(o.Holders) > 0 {
		return p.unknown("give safe-restart read access to that process's /proc/PID/maps and fd (root with CAP_SYS_PTRACE; some sandboxes deny even root)",
			"the maps and fds of pid %d (and %d more) could not be read: it may hold it",
			o.Holders[0].PID, len(o.Holders)-1)
	}
	p.ok("no live process maps it or holds an fd on it")
	return finish(p, sig, h, KindPosix, 0, o.CTimeNs/1e9)
}

// sysvForeign decides Foreign for a SysV object outside the signature;
// nsems is Any for kinds other than semaphore sets.
func sysvForeign(p *proof, h *holders, k Kind, key int32, mode, uid, cuid uint32, nsems int) (Judgement, bool) {
	sig := h.sig
	if sig == nil {
		return Judgement{}, false
	}
	if !sig.claims(k) {
		return p.decide(Foreign, "%s's signature does not claim %s objects", sig.Service, k), true
	}
	if d := sig.sysvMismatch(key, mode, uid, cuid); d != "" {
		return p.decide(Foreign, "not %s's: %s", sig.Service, d), true
	}
	if nsems != Any && sig.NSems != Any && nsems != sig.NSems {
		return p.decide(Foreign, "not %s's: nsems %d, want %d", sig.Service, nsems, sig.NSems), true
	}
	p.add(h.sigLine)
	return Judgement{}, false
}

// finish applies the signature and holder checks shared by every kind.
func finish(p *proof, sig *Signature, h *holders, k Kind, id int, ctime int64) Judgement {
	if sig == nil {
		return p.unknown("give a signature (--service, or --owner/--creator/--exe)", "no service signature to judge it by")
	}
	if j, ok := h.check(p, k, id, ctime); ok {
		return j
	}
	return p.decideLine(Orphan, "orphan: nothing alive can hold it")
}
