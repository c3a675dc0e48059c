//go:build linux

package ipcguard

import (
	"io/fs"
	"syscall"
)

// statOf returns the stat(2) fields of fi; ok is false when fi carries no
// syscall.Stat_t.
func statOf(fi fs.FileInfo) (st fileStat, ok bool) {
	s, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileStat{mode: uint32(fi.Mode().Perm()), mtimeNs: fi.ModTime().UnixNano()}, false
	}
	return fileStat{mode: uint32(s.Mode) & 0o7777, uid: s.Uid, gid: s.Gid, dev: uint64(s.Dev), ino: s.Ino,
		mtimeNs: s.Mtim.Nano(), ctimeNs: s.Ctim.Nano()}, true
}
