package ipcguard

import (
	"fmt"
	"os"
	"path/filepath"
)

// The columns each parser reads, in the order its row function reads them.
var (
	semColumns = []string{"key", "semid", "perms", "nsems", "uid", "gid", "cuid", "cgid", "otime", "ctime"}
	shmColumns = []string{"key", "shmid", "perms", "size", "cpid", "lpid", "nattch",
		"uid", "gid", "cuid", "cgid", "atime", "dtime", "ctime", "rss", "swap"}
	msgColumns = []string{"key", "msqid", "perms", "cbytes", "qnum", "lspid", "lrpid",
		"uid", "gid", "cuid", "cgid", "stime", "rtime", "ctime"}
)

// parseSemTable parses data, the text of /proc/sysvipc/sem read from the
// file name, into one SemSet per row, in file order, with Sems nil. Columns
// are found by header name; key is signed decimal, perms octal, the rest
// unsigned decimal. Empty or header-only input yields an empty slice.
// Malformed input is an error wrapping ErrMalformed naming name and line.
//
//	-2038172323          0   644          2     0     0     0     0          0 1795437375
func parseSemTable(name string, data []byte) ([]SemSet, error) {
	return parseColumns(name, data, semColumns, semRow)
}

// semRow reads one row of semColumns. The literal's calls run left to
// right (Go spec, "Order of evaluation"), matching semColumns' order.
func semRow(r *rowReader) SemSet {
	return SemSet{Key: r.key(), ID: r.id(), Perms: r.perms(), NSems: r.id(),
		UID: r.u32(), GID: r.u32(), CUID: r.u32(), CGID: r.u32(), OTime: r.time(), CTime: r.time()}
}

// parseShmTable parses data, the text of /proc/sysvipc/shm read from the
// file name, into one ShmSeg per row, in file order, under the rules of
// parseSemTable.
//
//	235444327          0   644                  4096 12495     0      0     0     0     0     0          0          0 1795437375                     0                     0
func parseShmTable(name string, data []byte) ([]ShmSeg, error) {
	return parseColumns(name, data, shmColumns, shmRow)
}

// shmRow reads one row of shmColumns, in their order.
func shmRow(r *rowReader) ShmSeg {
	return ShmSeg{Key: r.key(), ID: r.id(), Perms: r.perms(), Size: r.u64(),
		CPID: r.id(), LPID: r.id(), NAttch: r.count(),
		UID: r.u32(), GID: r.u32(), CUID: r.u32(), CGID: r.u32(),
		ATime: r.time(), DTime: r.time(), CTime: r.time(), RSS: r.u64(), Swap: r.u64()}
}

// parseMsgTable parses data, the text of /proc/sysvipc/msg read from the
// file name, into one MsgQueue per row, in file order, under the rules of
// parseSemTable.
//
//	567338992          0   644           0          0     0     0     0     0     0     0          0          0 1795437375
func parseMsgTable(name string, data []byte) ([]MsgQueue, error) {
	return parseColumns(name, data, msgColumns, msgRow)
}

// msgRow reads one row of msgColumns, in their order.
func msgRow(r *rowReader) MsgQueue {
	return MsgQueue{Key: r.key(), ID: r.id(), Perms: r.perms(), CBytes: r.u64(), QNum: r.u64(),
		LSPID: r.id(), LRPID: r.id(), UID: r.u32(), GID: r.u32(), CUID: r.u32(), CGID: r.u32(),
		STime: r.time(), RTime: r.time(), CTime: r.time()}
}

// ReadSemTable reads and parses procRoot/sysvipc/sem (procRoot is normally
// "/proc"): the semaphore sets of the caller's IPC namespace. Sems is left
// nil. Errors wrap the os error or ErrMalformed.
func ReadSemTable(procRoot string) ([]SemSet, error) {
	return readTable(procRoot, "sem", parseSemTable)
}

// ReadShmTable reads and parses procRoot/sysvipc/shm: the shared memory
// segments of the caller's IPC namespace.
func ReadShmTable(procRoot string) ([]ShmSeg, error) {
	return readTable(procRoot, "shm", parseShmTable)
}

// ReadMsgTable reads and parses procRoot/sysvipc/msg: the message queues of
// the caller's IPC namespace.
func ReadMsgTable(procRoot string) ([]MsgQueue, error) {
	return readTable(procRoot, "msg", parseMsgTable)
}

// readTable reads procRoot/sysvipc/file and parses it with parse.
func readTable[T any](procRoot, file string, parse func(string, []byte) ([]T, error)) ([]T, error) {
	path := filepath.Join(procRoot, "sysvipc", file)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s table: %w", file, err)
	}
	rows, err := parse(path, data)
	if err != nil {
		return nil, fmt.Errorf("read %s table: %w", file, err)
	}
	return rows, nil
}
