package semtest

import "golang.org/x/sys/unix"

// semidDS is struct semid64_ds on 64-bit generic arches.
type semidDS struct {
	Perm  unix.SysvIpcPerm
	OTime int64
	CTime int64
	NSems uint64
	_     uint64
	_     uint64
}
