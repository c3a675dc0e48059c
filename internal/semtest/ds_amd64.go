package semtest

import "golang.org/x/sys/unix"

// semidDS is struct semid64_ds on x86_64 (see ipcguard/sys_linux_amd64.go).
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
