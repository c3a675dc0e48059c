//go:build !linux

package ipcguard

import "io/fs"

// statOf returns what fs.FileInfo portably offers of fi; ok is false, as
// device, inode and owner are unknown here.
func statOf(fi fs.FileInfo) (st fileStat, ok bool) {
	return fileStat{mode: uint32(fi.Mode().Perm()), mtimeNs: fi.ModTime().UnixNano()}, false
}
