package ipcguard

import "strings"

// parseMapsLine parses one line of /proc/PID/maps: address range, perms,
// offset, device (major:minor in hex), inode (decimal), then, after
// padding, the pathname, which runs to the end of the line and may hold
// spaces. It returns the inode and the pathname as printed ("" for an
// anonymous mapping; a deleted file keeps its " (deleted)" suffix and a
// newline in a name reads "\012"). ok is false for a malformed line.
//
//	7f2c8a000000-7f2c8a021000 rw-s 00000000 00:1a 12345  /dev/shm/ShM.abc
func parseMapsLine(line string) (inode uint64, path string, ok bool) {
	var f [5]string
	rest := line
	for i := range f {
		if f[i], rest = cutToken(rest); f[i] == "" {
			return 0, "", false
		}
	}
	if !mapsAddr(f[0]) || !mapsPerms(f[1]) || !isHex(f[2]) || !mapsDev(f[3]) {
		return 0, "", false
	}
	inode, ok = parseDigits(f[4], 10, 1<<64-1)
	if !ok || (rest != "" && rest[0] != ' ') {
		return 0, "", false
	}
	return inode, strings.TrimLeft(rest, " "), true
}

// cutToken returns the first space-separated token of s, skipping leading
// spaces, and what follows it (starting with its separator).
func cutToken(s string) (tok, rest string) {
	s = strings.TrimLeft(s, " ")
	if i := strings.IndexByte(s, ' '); i >= 0 {
		return s[:i], s[i:]
	}
	return s, ""
}

// mapsAddr reports whether s is a hex address range "start-end".
func mapsAddr(s string) bool {
	lo, hi, ok := strings.Cut(s, "-")
	return ok && isHex(lo) && isHex(hi)
}

// mapsPerms reports whether s is a permission field such as "rw-s": r or
// -, w or -, x or -, then s (shared) or p (private).
func mapsPerms(s string) bool {
	return len(s) == 4 && (s[0] == 'r' || s[0] == '-') && (s[1] == 'w' || s[1] == '-') &&
		(s[2] == 'x' || s[2] == '-') && (s[3] == 's' || s[3] == 'p')
}

// mapsDev reports whether s is a hex device "major:minor".
func mapsDev(s string) bool {
	major, minor, ok := strings.Cut(s, ":")
	return ok && isHex(major) && isHex(minor)
}

// isHex reports whether s is a non-empty run of hex digits.
func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return s != ""
}
