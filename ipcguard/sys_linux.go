//go:build linux && (amd64 || arm64)

package ipcguard

import (
	"errors"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// semctl(2) commands. x/sys/unix has no semctl wrapper and none of these
// constants; the values are from include/uapi/linux/sem.h and ipc.h. On
// amd64 and arm64 the kernel always uses the 64-bit structures, so IPC_64
// must not be or'ed in (it would be an unknown command there).
const (
	ipcRMID    = 0  // IPC_RMID: remove the set, waking waiters with EIDRM
	ipcStat    = 2  // IPC_STAT: copy semid64_ds (needs read permission)
	semGetPID  = 11 // GETPID: sempid of one semaphore
	semGetVal  = 12 // GETVAL: value of one semaphore
	semGetNCnt = 14 // GETNCNT: tasks waiting for an increase
	semGetZCnt = 15 // GETZCNT: tasks waiting for zero
	semInfo    = 19 // SEM_INFO: struct seminfo with usage, returns highest index
)

// seminfo is struct seminfo from include/uapi/linux/sem.h. With SEM_INFO,
// semusz is the number of sets in use and semaem the semaphores in use.
type seminfo struct {
	semmap, semmni, semmns, semmnu, semmsl, semopm, semume, semusz, semvmx, semaem int32
}

// semctl is the raw syscall: semctl(id, num, cmd, arg). arg is the value
// of union semun (an int, or a pointer). It retries on EINTR.
func semctl(id, num, cmd int, arg uintptr) (int, error) {
	for {
		r, _, errno := unix.Syscall6(unix.SYS_SEMCTL, uintptr(id), uintptr(num), uintptr(cmd), arg, 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return int(r), os.NewSyscallError("semctl", errno)
		}
		return int(r), nil
	}
}

// semStat returns the set's current header (IPC_STAT).
func semStat(id int) (semidDS, error) {
	var ds semidDS
	_, err := semctl(id, 0, ipcStat, uintptr(unsafe.Pointer(&ds)))
	return ds, err
}

// semRead reads value, sempid and both wait counts of each of n semaphores.
func semRead(id, n int) ([]Sem, error) {
	sems := make([]Sem, n)
	for i := range sems {
		var err error
		s := &sems[i]
		if s.Val, err = semctl(id, i, semGetVal, 0); err != nil {
			return nil, err
		}
		if s.PID, err = semctl(id, i, semGetPID, 0); err != nil {
			return nil, err
		}
		if s.NCnt, err = semctl(id, i, semGetNCnt, 0); err != nil {
			return nil, err
		}
		if s.ZCnt, err = semctl(id, i, semGetZCnt, 0); err != nil {
			return nil, err
		}
	}
	return sems, nil
}

// semWatch returns the total GETNCNT+GETZCNT over n semaphores and a hash
// of their last-operation pids (see pidHash).
func semWatch(id, n int) (waiters int, pids uint64, err error) {
	h := newPidHash()
	for i := 0; i < n; i++ {
		nc, err := semctl(id, i, semGetNCnt, 0)
		if err != nil {
			return 0, 0, err
		}
		zc, err := semctl(id, i, semGetZCnt, 0)
		if err != nil {
			return 0, 0, err
		}
		pid, err := semctl(id, i, semGetPID, 0)
		if err != nil {
			return 0, 0, err
		}
		waiters += nc + zc
		h = h.add(pid)
	}
	return waiters, uint64(h), nil
}

// semRemove removes the set (IPC_RMID).
func semRemove(id int) error {
	_, err := semctl(id, 0, ipcRMID, 0)
	return err
}

// semUsage returns the sets and semaphores in use in this IPC namespace.
func semUsage() (sets, sems int, err error) {
	var si seminfo
	if _, err := semctl(0, 0, semInfo, uintptr(unsafe.Pointer(&si))); err != nil {
		return 0, 0, err
	}
	return int(si.semusz), int(si.semaem), nil
}

// isGone reports whether err means the object no longer exists: EINVAL for
// a removed id, EIDRM when racing the removal.
func isGone(err error) bool {
	return errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EIDRM)
}

// msqidDS is struct msqid64_ds (include/uapi/asm-generic/msgbuf.h, 64-bit;
// x86_64 uses the same layout).
type msqidDS struct {
	Perm   unix.SysvIpcPerm
	STime  int64
	RTime  int64
	CTime  int64
	CBytes uint64
	QNum   uint64
	QBytes uint64
	LSPID  int32
	LRPID  int32
	_      uint64
	_      uint64
}

// msgctl is the raw msgctl(2) syscall, retried on EINTR.
func msgctl(id, cmd int, ds *msqidDS) error {
	for {
		_, _, errno := unix.Syscall(unix.SYS_MSGCTL, uintptr(id), uintptr(cmd), uintptr(unsafe.Pointer(ds)))
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return os.NewSyscallError("msgctl", errno)
		}
		return nil
	}
}

// shmStamp and msgStamp read the current state of a segment or queue in
// the form a Judgement recorded, plus whether it is now in use.
func shmStamp(id int) (stamp, bool, error) {
	var d unix.SysvShmDesc
	if _, err := unix.SysvShmCtl(id, unix.IPC_STAT, &d); err != nil {
		return stamp{}, false, os.NewSyscallError("shmctl", err)
	}
	st := stamp{otime: max(d.Atime, d.Dtime), ctime: d.Ctime, key: d.Perm.Key, uid: d.Perm.Uid, cuid: d.Perm.Cuid, mode: d.Perm.Mode}
	return st, d.Nattch > 0, nil
}

func shmRemove(id int) error {
	_, err := unix.SysvShmCtl(id, unix.IPC_RMID, nil)
	return os.NewSyscallError("shmctl", err)
}

func msgStamp(id int) (stamp, bool, error) {
	var d msqidDS
	if err := msgctl(id, ipcStat, &d); err != nil {
		return stamp{}, false, err
	}
	st := stamp{otime: max(d.STime, d.RTime), ctime: d.CTime, key: d.Perm.Key, uid: d.Perm.Uid, cuid: d.Perm.Cuid, mode: d.Perm.Mode}
	return st, d.QNum > 0, nil
}

func msgRemove(id int) error { return msgctl(id, ipcRMID, nil) }

// semStampNow is semStat in the form a Judgement recorded, plus whether
// any task now waits on the set.
func semStampNow(id int) (stamp, bool, error) {
	ds, err := semStat(id)
	if err != nil {
		return stamp{}, false, err
	}
	st := stamp{otime: ds.OTime, ctime: ds.CTime, nsems: int(ds.NSems), key: ds.Perm.Key,
		uid: ds.Perm.Uid, cuid: ds.Perm.Cuid, mode: ds.Perm.Mode}
	w, pids, err := semWatch(id, int(ds.NSems))
	st.pids = pids
	return st, w > 0, err
}

// semStatAny is SEM_STAT_ANY (Linux 4.17): IPC_STAT by index, without the
// read-permission check, returning the set's id.
const semStatAny = 20

// statSemTable lists the sets through semctl(SEM_STAT_ANY) over every index
// up to the highest in use (SEM_INFO's return value). It carries the same
// fields as /proc/sysvipc/sem without the kernel formatting them as text,
// which costs about 1.3 us a set (40 ms for 32000). Indexes not in use
// answer EINVAL and are skipped. ok is false when the result cannot be
// trusted (no SEM_STAT_ANY, or sets changed during the walk).
func statSemTable() (sets []SemSet, ok bool, err error) {
	var si seminfo
	maxIdx, err := semctl(0, 0, semInfo, uintptr(unsafe.Pointer(&si)))
	if err != nil {
		return nil, false, err
	}
	found := make([]SemSet, maxIdx+1)
	used := make([]bool, maxIdx+1)
	errs := make([]error, maxIdx+1)
	forEach(maxIdx+1, func(idx int) {
		var ds semidDS
		id, err := semctl(idx, 0, semStatAny, uintptr(unsafe.Pointer(&ds)))
		if err != nil {
			if !isGone(err) {
				errs[idx] = err
			}
			return
		}
		used[idx] = true
		found[idx] = SemSet{Key: ds.Perm.Key, ID: id, Perms: ds.Perm.Mode, NSems: int(ds.NSems),
			UID: ds.Perm.Uid, GID: ds.Perm.Gid, CUID: ds.Perm.Cuid, CGID: ds.Perm.Cgid, OTime: ds.OTime, CTime: ds.CTime}
	})
	for idx := range found {
		if errs[idx] != nil {
			return nil, true, errs[idx]
		}
		if used[idx] {
			sets = append(sets, found[idx])
		}
	}
	// A kernel without SEM_STAT_ANY answers EINVAL for every index, which
	// reads as "no sets"; so does one where sets came or went meanwhile.
	// Either way the count disagrees with SEM_INFO's, and /proc decides.
	if len(sets) != int(si.semusz) {
		return nil, false, nil
	}
	return sets, true, nil
}
