package ipcguard

import "testing"

func TestParseMapsLine(t *testing.T) {
	tests := []struct {
		name, line string
		inode      uint64
		path       string
		ok         bool
	}{
		{name: "brief example", line: "7f2c8a000000-7f2c8a021000 rw-s 00000000 00:1a 12345  /dev/shm/ShM.abc",
			inode: 12345, path: "/dev/shm/ShM.abc", ok: true},
		{name: "kernel padding", line: "7f4be0364000-7f4be0365000 rw-s 00000000 00:1b 3                          /dev/shm/other",
			inode: 3, path: "/dev/shm/other", ok: true},
		{name: "spaces in path", line: "7f4be0365000-7f4be0366000 rw-s 00000000 00:1b 2                          /dev/shm/my test file",
			inode: 2, path: "/dev/shm/my test file", ok: true},
		{name: "deleted", line: "7f4be0365000-7f4be0366000 rw-s 00000000 00:1b 2      /dev/shm/my test file (deleted)",
			inode: 2, path: "/dev/shm/my test file (deleted)", ok: true},
		{name: "trailing space kept", line: "1000-2000 r--s 00000000 00:1b 9 /dev/shm/x ", inode: 9, path: "/dev/shm/x ", ok: true},
		{name: "escaped newline", line: `1000-2000 r--s 00000000 00:1b 9 /dev/shm/a\012b`, inode: 9, path: `/dev/shm/a\012b`, ok: true},
		{name: "anonymous", line: "7f4bdf51e000-7f4bdf651000 rw-p 00000000 00:00 0 ", ok: true},
		{name: "anonymous no space", line: "7f4bdf51e000-7f4bdf651000 rw-p 00000000 00:00 0", ok: true},
		{name: "heap", line: "5642133e0000-56421356f000 rw-p 00000000 00:00 0                          [heap]", path: "[heap]", ok: true},
		{name: "vsyscall", line: "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]",
			path: "[vsyscall]", ok: true},
		{name: "big dev and inode", line: "1000-2000 r--p 00002000 103:02 18446744073709551615 /usr/lib/x",
			inode: 1<<64 - 1, path: "/usr/lib/x", ok: true},
		{name: "empty", line: ""},
		{name: "four fields", line: "1000-2000 r--p 00000000 00:1b"},
		{name: "no range", line: "1000 r--p 00000000 00:1b 3 /x"},
		{name: "bad address", line: "10g0-2000 r--p 00000000 00:1b 3 /x"},
		{name: "bad perms", line: "1000-2000 r-- 00000000 00:1b 3 /x"},
		{name: "bad perm letter", line: "1000-2000 rwxq 00000000 00:1b 3 /x"},
		{name: "newline in perms", line: "1000-2000 r-\np 00000000 00:1b 3 /x"},
		{name: "bad offset", line: "1000-2000 r--p 0000z000 00:1b 3 /x"},
		{name: "bad dev", line: "1000-2000 r--p 00000000 001b 3 /x"},
		{name: "hex inode", line: "1000-2000 r--p 00000000 00:1b 3a /x"},
		{name: "inode overflow", line: "1000-2000 r--p 00000000 00:1b 18446744073709551616 /x"},
		{name: "tab separated", line: "1000-2000\tr--p 00000000 00:1b 3 /x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inode, path, ok := parseMapsLine(tt.line)
			if inode != tt.inode || path != tt.path || ok != tt.ok {
				t.Errorf("parseMapsLine(%q) = %d, %q, %v; want %d, %q, %v",
					tt.line, inode, path, ok, tt.inode, tt.path, tt.ok)
			}
		})
	}
}

func TestEscapeMapsPath(t *testing.T) {
	if got, want := escapeMapsPath("/dev/shm/a\nb\\c"), `/dev/shm/a\012b\c`; got != want {
		t.Errorf("escapeMapsPath = %q, want %q", got, want)
	}
}
