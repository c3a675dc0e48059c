package ipcguard

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// Any in a numeric Signature field matches every value.
const Any = -1

// Signature describes the IPC objects one service creates. An object that
// does not match it is foreign to the service and never removed. The zero
// value is not useful: numeric fields must be set, to a value or to Any.
type Signature struct {
	Service string `json:"service"` // name used in proofs, e.g. "apache2"
	Kinds   []Kind `json:"kinds"`   // kinds of object the service creates; other kinds are foreign
	Key     int64  `json:"key"`     // IPC key (0 is IPC_PRIVATE), or Any
	NSems   int    `json:"nsems"`   // semaphores per set (sem only), or Any
	Mode    int64  `json:"mode"`    // permission bits, e.g. 0o600, or Any
	UID     int64  `json:"uid"`     // owner uid, or Any
	CUID    int64  `json:"cuid"`    // creator uid (SysV only), or Any
	// Exe is the service's executable. Live processes running it are the
	// ones that may hold the service's objects (README.md invariant 4).
	Exe string `json:"exe"`
	// PosixGlob matches the /dev/shm names of the service's POSIX objects
	// (filepath.Match syntax). Empty means the service has none.
	PosixGlob string `json:"posix_glob,omitempty"`
}

// ApacheSignature is the signature of Apache httpd's sysvsem mutexes (APR
// proc_mutex.c: semget(IPC_PRIVATE, 1, 0600) by the root-started master, then
// IPC_SET to uid=User in unixd.c ap_unixd_set_proc_mutex_perms).
func ApacheSignature(service string, user uint32, exe string) Signature {
	return Signature{
		Service: service, Kinds: []Kind{KindSem},
		Key: 0, NSems: 1, Mode: 0o600, UID: int64(user), CUID: 0, Exe: exe,
	}
}

// claims reports whether the signature covers objects of kind k.
func (s *Signature) claims(k Kind) bool { return s != nil && slices.Contains(s.Kinds, k) }

// String describes the signature for proofs and plans.
func (s Signature) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %v: key %s", s.Service, s.Kinds, anyOr(s.Key, keyString))
	if s.NSems != Any {
		fmt.Fprintf(&b, ", nsems %d", s.NSems)
	}
	fmt.Fprintf(&b, ", mode %s, owner uid %s, creator uid %s", anyOr(s.Mode, modeString),
		anyOr(s.UID, decString), anyOr(s.CUID, decString))
	if s.PosixGlob != "" {
		fmt.Fprintf(&b, ", /dev/shm/%s", s.PosixGlob)
	}
	return b.String()
}

// sysvMismatch names the first SysV header field that differs from the
// signature, or returns "" when all match.
func (s *Signature) sysvMismatch(key int32, mode, uid, cuid uint32) string {
	switch {
	case s.Key != Any && int64(key) != s.Key:
		return fmt.Sprintf("key %s, want %s", keyString(int64(key)), keyString(s.Key))
	case s.Mode != Any && int64(mode&0o777) != s.Mode:
		return fmt.Sprintf("mode %s, want %s", modeString(int64(mode&0o777)), modeString(s.Mode))
	case s.UID != Any && int64(uid) != s.UID:
		return fmt.Sprintf("owner uid %d, want %d", uid, s.UID)
	case s.CUID != Any && int64(cuid) != s.CUID:
		return fmt.Sprintf("creator uid %d, want %d", cuid, s.CUID)
	}
	return ""
}

// posixMismatch is sysvMismatch for a /dev/shm object.
func (s *Signature) posixMismatch(o *PosixObject) string {
	if ok, _ := filepath.Match(s.PosixGlob, o.Name); !ok || s.PosixGlob == "" {
		return fmt.Sprintf("name %q does not match %q", o.Name, s.PosixGlob)
	}
	switch {
	case s.Mode != Any && int64(o.Mode&0o777) != s.Mode:
		return fmt.Sprintf("mode %s, want %s", modeString(int64(o.Mode&0o777)), modeString(s.Mode))
	case s.UID != Any && int64(o.UID) != s.UID:
		return fmt.Sprintf("owner uid %d, want %d", o.UID, s.UID)
	}
	return ""
}

func keyString(k int64) string {
	if k == 0 {
		return "0 (private)"
	}
	return fmt.Sprintf("0x%08x", uint32(k))
}

func modeString(m int64) string { return fmt.Sprintf("%04o", m) }
func decString(v int64) string  { return fmt.Sprint(v) }

func anyOr(v int64, f func(int64) string) string {
	if v == Any {
		return "any"
	}
	return f(v)
}
