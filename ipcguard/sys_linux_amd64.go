package ipcguard

import "golang.org/x/sys/unix"

// semidDS is struct semid64_ds from arch/x86/include/uapi/asm/sembuf.h
// (x86_64 layout: a padding word after each time).
type semidDS struct {
	Perm  unix.SysvIpcPerm
	OTime int64
	_     uint64
	CTime int64
	_     uint64
	NSems uint64
	_     uint64
	_     uint64
}
