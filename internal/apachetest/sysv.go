//go:build linux

package apachetest

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// semctl commands (include/uapi/linux/sem.h).
const (
	semGETPID  = 11
	semGETVAL  = 12
	semGETNCNT = 14
	semGETZCNT = 15
)

// SemSet is one line of /proc/sysvipc/sem plus the per-semaphore values.
type SemSet struct {
	Key                  int32
	ID                   int
	Perms                uint32 // mode bits, e.g. 0o600
	NSems                int
	UID, GID, CUID, CGID int
	OTime, CTime         time.Time // zero when never set
	Sems                 []Sem
}

// Sem is one semaphore of a set.
type Sem struct {
	Val  int
	PID  int // GETPID: the last process to semop it (or to SETVAL/SETALL it)
	NCnt int // processes waiting for the value to increase
	ZCnt int // processes waiting for the value to become zero
}

// SemSets lists the System V semaphore sets of this process's IPC namespace
// (through /proc/sysvipc/sem, so /proc must belong to that namespace, as
// nstest arranges) with GETVAL/GETPID/GETNCNT/GETZCNT of every semaphore.
func SemSets() ([]SemSet, error) {
	f, err := os.Open("/proc/sysvipc/sem")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []SemSet
	sc := bufio.NewScanner(f)
	sc.Scan() // header: key semid perms nsems uid gid cuid cgid otime ctime
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 10 {
			continue
		}
		n := make([]int64, 10)
		for i := range 10 {
			if n[i], err = strconv.ParseInt(fs[i], 10, 64); err != nil {
				return nil, fmt.Errorf("/proc/sysvipc/sem: %q: %w", sc.Text(), err)
			}
		}
		// perms is printed in octal ("%4o").
		perms, err := strconv.ParseUint(fs[2], 8, 32)
		if err != nil {
			return nil, fmt.Errorf("/proc/sysvipc/sem: %q: %w", sc.Text(), err)
		}
		set := SemSet{
			Key: int32(n[0]), ID: int(n[1]), Perms: uint32(perms), NSems: int(n[3]),
			UID: int(n[4]), GID: int(n[5]), CUID: int(n[6]), CGID: int(n[7]),
			OTime: unixOrZero(n[8]), CTime: unixOrZero(n[9]),
		}
		for i := range set.NSems {
			var sem Sem
			vals := []*int{&sem.Val, &sem.PID, &sem.NCnt, &sem.ZCnt}
			for j, cmd := range []int{semGETVAL, semGETPID, semGETNCNT, semGETZCNT} {
				r, _, errno := syscall.Syscall6(syscall.SYS_SEMCTL, uintptr(set.ID), uintptr(i), uintptr(cmd), 0, 0, 0)
				if errno != 0 {
					// The set was removed after we read the list.
					return nil, fmt.Errorf("semctl(%d, %d, %d): %w", set.ID, i, cmd, errno)
				}
				*vals[j] = int(r)
			}
			set.Sems = append(set.Sems, sem)
		}
		out = append(out, set)
	}
	return out, sc.Err()
}

func unixOrZero(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0)
}

// SysVCounts returns how many semaphore sets, shared memory segments and
// message queues /proc/sysvipc lists.
func SysVCounts() (sem, shm, msg int, err error) {
	counts := make([]int, 3)
	for i, kind := range []string{"sem", "shm", "msg"} {
		b, err := os.ReadFile("/proc/sysvipc/" + kind)
		if err != nil {
			return 0, 0, 0, err
		}
		counts[i] = len(strings.Split(strings.TrimSpace(string(b)), "\n")) - 1
	}
	return counts[0], counts[1], counts[2], nil
}
