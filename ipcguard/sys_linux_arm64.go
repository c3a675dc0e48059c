package ipcguard

import "golang.org/x/sys/unix"

// semidDS is struct semid64_ds from include/uapi/asm-generic/sembuf.h for
// 64-bit architectures (no padding after the times).
type semidDS struct {
	Perm  unix.SysvIpcPerm
	OTime int64
	CTime int64
	NSems uint64
	_     uint64
	_     uint64
}
