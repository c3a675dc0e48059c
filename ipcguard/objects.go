package ipcguard

// Kind names a class of IPC object.
type Kind string

// The kinds of IPC object ipcguard inventories.
const (
	KindSem   Kind = "sem"   // SysV semaphore set (/proc/sysvipc/sem)
	KindShm   Kind = "shm"   // SysV shared memory segment (/proc/sysvipc/shm)
	KindMsg   Kind = "msg"   // SysV message queue (/proc/sysvipc/msg)
	KindPosix Kind = "posix" // POSIX shm segment or named semaphore (/dev/shm)
)

// SemSet is one SysV semaphore set: a row of /proc/sysvipc/sem plus, per
// semaphore, what semctl(2) reports. Times are Unix seconds; 0 means never.
//
//	key      semid perms      nsems   uid   gid  cuid  cgid      otime      ctime
//	  0          3   600          1    33    33     0     0 1700000000 1700000000
type SemSet struct {
	Key   int32  `json:"key"`   // IPC key; 0 is IPC_PRIVATE
	ID    int    `json:"semid"` // semaphore set identifier
	Perms uint32 `json:"perms"` // permission bits (octal in /proc)
	NSems int    `json:"nsems"` // number of semaphores in the set
	UID   uint32 `json:"uid"`   // owner uid (sem_perm.uid)
	GID   uint32 `json:"gid"`   // owner gid
	CUID  uint32 `json:"cuid"`  // creator uid
	CGID  uint32 `json:"cgid"`  // creator gid
	OTime int64  `json:"otime"` // time of the last semop(2) on any semaphore
	CTime int64  `json:"ctime"` // creation, or last IPC_SET/SETVAL/SETALL
	// Sems holds one entry per semaphore when semctl could read them
	// (nil when the caller lacks read permission or the set vanished).
	Sems []Sem `json:"sems,omitempty"`
}

// Sem is the state of one semaphore of a set, from semctl(2).
type Sem struct {
	Val  int `json:"val"`  // GETVAL: current value
	PID  int `json:"pid"`  // GETPID: pid of the last semop/SETVAL/exit-undo (sempid)
	NCnt int `json:"ncnt"` // GETNCNT: processes waiting for the value to increase
	ZCnt int `json:"zcnt"` // GETZCNT: processes waiting for the value to become zero
}

// ShmSeg is one SysV shared memory segment: a row of /proc/sysvipc/shm.
//
//	key shmid perms size cpid lpid nattch uid gid cuid cgid atime dtime ctime rss swap
type ShmSeg struct {
	Key    int32  `json:"key"`    // IPC key; 0 is IPC_PRIVATE
	ID     int    `json:"shmid"`  // segment identifier
	Perms  uint32 `json:"perms"`  // permission bits plus SHM_DEST/SHM_LOCKED flags
	Size   uint64 `json:"size"`   // size in bytes
	CPID   int    `json:"cpid"`   // creator pid
	LPID   int    `json:"lpid"`   // pid of the last shmat/shmdt
	NAttch int    `json:"nattch"` // current number of attaches
	UID    uint32 `json:"uid"`    // owner uid
	GID    uint32 `json:"gid"`    // owner gid
	CUID   uint32 `json:"cuid"`   // creator uid
	CGID   uint32 `json:"cgid"`   // creator gid
	ATime  int64  `json:"atime"`  // last attach time
	DTime  int64  `json:"dtime"`  // last detach time
	CTime  int64  `json:"ctime"`  // creation or last IPC_SET
	RSS    uint64 `json:"rss"`    // resident bytes
	Swap   uint64 `json:"swap"`   // swapped bytes
}

// MsgQueue is one SysV message queue: a row of /proc/sysvipc/msg.
//
//	key msqid perms cbytes qnum lspid lrpid uid gid cuid cgid stime rtime ctime
type MsgQueue struct {
	Key    int32  `json:"key"`    // IPC key; 0 is IPC_PRIVATE
	ID     int    `json:"msqid"`  // queue identifier
	Perms  uint32 `json:"perms"`  // permission bits
	CBytes uint64 `json:"cbytes"` // bytes queued
	QNum   uint64 `json:"qnum"`   // messages queued
	LSPID  int    `json:"lspid"`  // pid of the last msgsnd
	LRPID  int    `json:"lrpid"`  // pid of the last msgrcv
	UID    uint32 `json:"uid"`    // owner uid
	GID    uint32 `json:"gid"`    // owner gid
	CUID   uint32 `json:"cuid"`   // creator uid
	CGID   uint32 `json:"cgid"`   // creator gid
	STime  int64  `json:"stime"`  // last msgsnd time
	RTime  int64  `json:"rtime"`  // last msgrcv time
	CTime  int64  `json:"ctime"`  // creation or last IPC_SET
}

// PosixObject is a POSIX shared memory segment or named semaphore, i.e. a
// file in /dev/shm (named semaphores are the files called "sem.NAME").
type PosixObject struct {
	Name    string   `json:"name"`              // file name in /dev/shm
	Sem     bool     `json:"sem"`               // a named semaphore (sem.*), else a shm segment
	Size    int64    `json:"size"`              // bytes
	Mode    uint32   `json:"mode"`              // permission bits
	UID     uint32   `json:"uid"`               // owner uid
	GID     uint32   `json:"gid"`               // owner gid
	Dev     uint64   `json:"dev"`               // device of the tmpfs
	Inode   uint64   `json:"inode"`             // inode, the object's identity
	MTimeNs int64    `json:"mtime_ns"`          // modification time
	CTimeNs int64    `json:"ctime_ns"`          // status change time
	Holders []Holder `json:"holders,omitempty"` // live processes that map it or hold an fd
}

// Holder is a process that maps a POSIX object or holds an open fd on it,
// or one that may: a process whose maps or fds could not be read.
type Holder struct {
	PID int    `json:"pid"` // holding process
	How string `json:"how"` // "map" (in /proc/PID/maps), "fd" (in /proc/PID/fd), or HowUnreadable
}

// HowUnreadable marks a Holder whose /proc/PID/maps or fds could not be
// read: it may hold the object, so the object cannot be proven orphan.
const HowUnreadable = "unreadable"

// Limits are the kernel's IPC limits of the current IPC namespace.
type Limits struct {
	SEMMSL int `json:"semmsl"` // max semaphores per set
	SEMMNS int `json:"semmns"` // max semaphores in the namespace
	SEMOPM int `json:"semopm"` // max operations per semop call
	SEMMNI int `json:"semmni"` // max semaphore sets
	SHMMNI int `json:"shmmni"` // max shm segments
	MSGMNI int `json:"msgmni"` // max message queues
}
