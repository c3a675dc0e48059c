//go:build linux

package proc

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// MountEntry is one line of /proc/self/mountinfo (proc(5)):
//
//	36 35 0:21 /php/.php.sock.safe-restart-123 /run/php/php.sock rw - tmpfs ...
type MountEntry struct {
	Root  string // field 4: the mount's root within its file system
	Point string // field 5: its mount point
}

// ReadMountInfo returns the mounts of this process's mount namespace, in
// mount order, their paths' octal escapes decoded.
func ReadMountInfo() ([]MountEntry, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var out []MountEntry
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			return nil, fmt.Errorf("/proc/self/mountinfo: malformed line %q", line)
		}
		out = append(out, MountEntry{Root: unescapeMount(f[3]), Point: unescapeMount(f[4])})
	}
	return out, nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
