//go:build linux

// Package semtest creates and operates real SysV semaphore sets for tests
// and benchmarks. Call it only inside a private IPC namespace
// (internal/nstest): nothing here checks whose sets it touches.
package semtest

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	ipcCreat = 0o1000 // IPC_CREAT
	ipcSet   = 1      // IPC_SET
	setVal   = 16     // SETVAL
	semUndo  = 0x1000 // SEM_UNDO
)

// Create makes a set of nsems semaphores under key (0 is IPC_PRIVATE), each
// set to val (SETVAL, as APR does), then hands it to uid/gid with mode
// (IPC_SET, as Apache's ap_unixd_set_proc_mutex_perms does). It returns the
// semid.
func Create(key int32, nsems int, mode uint32, uid, gid uint32, val int) (int, error) {
	id, _, errno := unix.Syscall(unix.SYS_SEMGET, uintptr(key), uintptr(nsems), uintptr(ipcCreat|mode))
	if errno != 0 {
		return 0, os.NewSyscallError("semget", errno)
	}
	for i := 0; i < nsems; i++ {
		if err := ctl(int(id), i, setVal, uintptr(val)); err != nil {
			return 0, err
		}
	}
	ds := semidDS{}
	ds.Perm.Uid, ds.Perm.Gid, ds.Perm.Mode = uid, gid, mode
	if err := ctl(int(id), 0, ipcSet, uintptr(unsafe.Pointer(&ds))); err != nil {
		return 0, err
	}
	return int(id), nil
}

// Op performs one semop on semaphore num of set id, with SEM_UNDO as APR's
// lock does. It blocks while the operation cannot proceed.
func Op(id, num, delta int) error {
	b := sembuf{num: uint16(num), op: int16(delta), flg: semUndo}
	for {
		_, _, errno := unix.Syscall(unix.SYS_SEMOP, uintptr(id), uintptr(unsafe.Pointer(&b)), 1)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return os.NewSyscallError("semop", errno)
		}
		return nil
	}
}

// sembuf is struct sembuf from include/uapi/linux/sem.h.
type sembuf struct {
	num uint16
	op  int16
	flg int16
}

func ctl(id, num, cmd int, arg uintptr) error {
	_, _, errno := unix.Syscall6(unix.SYS_SEMCTL, uintptr(id), uintptr(num), uintptr(cmd), arg, 0, 0)
	if errno != 0 {
		return os.NewSyscallError("semctl", errno)
	}
	return nil
}

// Remove removes set id (IPC_RMID).
func Remove(id int) error { return ctl(id, 0, 0, 0) }
