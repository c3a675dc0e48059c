package ipcguard

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// addTestdata adds every file of testdata/dir as a seed of f.
func addTestdata(f *testing.F, dir string) {
	paths, err := filepath.Glob(filepath.Join("testdata", dir, "*"))
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range paths {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
}

// nonBlankLines counts the lines of data holding a byte other than the
// field separators blank, tab, CR, VT and FF.
func nonBlankLines(data []byte) int {
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Trim(line, " \t\r\v\f") != "" {
			n++
		}
	}
	return n
}

// checkMalformed fails t unless err wraps ErrMalformed and names name and a line.
func checkMalformed(t *testing.T, err error, name string) {
	t.Helper()
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), name+" line ") {
		t.Fatalf("error %q does not wrap ErrMalformed naming %q and a line", err, name)
	}
}

// checkTable is the property of the /proc/sysvipc parsers: a malformed
// error, or one row per non-blank line after the header that prints back
// (as the kernel would) to the same rows.
func checkTable[T any](t *testing.T, data []byte, parse func(string, []byte) ([]T, error), header string, format func(T) string) {
	rows, err := parse("fuzz", data)
	if err != nil {
		checkMalformed(t, err, "fuzz")
		return
	}
	if want := max(nonBlankLines(data)-1, 0); len(rows) != want {
		t.Fatalf("%d rows from %d non-blank lines", len(rows), want+1)
	}
	var b strings.Builder
	b.WriteString(header)
	for _, r := range rows {
		b.WriteString(format(r))
	}
	again, err := parse("again", []byte(b.String()))
	if err != nil || !reflect.DeepEqual(again, rows) {
		t.Fatalf("rows do not print back: %v\n%+v\n%+v", err, rows, again)
	}
}

func FuzzParseSemTable(f *testing.F) {
	addTestdata(f, "sysvipc")
	f.Add([]byte(semHeader + "-2147483648 0 7777 0 4294967295 0 0 0 9223372036854775807 0"))
	f.Fuzz(func(t *testing.T, data []byte) { checkTable(t, data, parseSemTable, semHeader, fmtSemRow) })
}

func FuzzParseShmTable(f *testing.F) {
	addTestdata(f, "sysvipc")
	f.Fuzz(func(t *testing.T, data []byte) { checkTable(t, data, parseShmTable, shmHeader, fmtShmRow) })
}

func FuzzParseMsgTable(f *testing.F) {
	addTestdata(f, "sysvipc")
	f.Fuzz(func(t *testing.T, data []byte) { checkTable(t, data, parseMsgTable, msgHeader, fmtMsgRow) })
}

func FuzzParseSemLimits(f *testing.F) {
	for _, s := range []string{"32000\t1024000000\t500\t32000\n", "250 32000 32 128", "", "1\t2\t3\n", "1\t-2\t3\t4\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, b, c, d, err := parseSemLimits("sem", data)
		if err != nil {
			checkMalformed(t, err, "sem")
			return
		}
		printed := fmt.Sprintf("%d\t%d\t%d\t%d\n", a, b, c, d)
		a2, b2, c2, d2, err := parseSemLimits("again", []byte(printed))
		if a < 0 || b < 0 || c < 0 || d < 0 || err != nil || [4]int{a, b, c, d} != [4]int{a2, b2, c2, d2} {
			t.Fatalf("limits %d %d %d %d do not print back: %v", a, b, c, d, err)
		}
	})
}

func FuzzParseStat(f *testing.F) {
	for _, p := range []string{"good/1/stat", "good/900/stat", "malformed/42/stat"} {
		if data, err := os.ReadFile(filepath.Join("testdata", "proc", p)); err == nil {
			f.Add(string(data))
		}
	}
	for _, s := range []string{"", "1 () S 0", "1 (a) S 0 " + strings.Repeat("1 ", 18), "9 (x) Z 1 " + strings.Repeat("7 ", 18) + "\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		p, err := parseStat(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "line 1") {
				t.Fatalf("error %q does not wrap ErrMalformed naming line 1", err)
			}
			return
		}
		comm := " (" + p.Comm + ") "
		at := strings.Index(data, comm)
		if p.PID <= 0 || p.PPID < 0 || at < 1 || strings.LastIndexByte(data, ')') != at+len(comm)-2 {
			t.Fatalf("%+v inconsistent with %q", p, data)
		}
		if pid, err := strconv.ParseUint(data[:at], 10, 64); err != nil || pid != uint64(p.PID) {
			t.Fatalf("pid %d from %q", p.PID, data[:at])
		}
		if f := strings.Fields(data[at+len(comm):]); len(f) < statFields-2 || f[0] != string([]byte{p.State}) {
			t.Fatalf("state %q from %q", p.State, data)
		}
	})
}

// checkLineValue is the property of parseStatusUID and parseBootTime: on
// success some line starts with prefix and its first field is v.
func checkLineValue(t *testing.T, data, prefix string, v uint64) {
	for _, line := range strings.Split(data, "\n") {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			f := strings.Fields(rest)
			if n, err := strconv.ParseUint(f[0], 10, 64); err != nil || n != v {
				t.Fatalf("value %d from line %q", v, line)
			}
			return
		}
	}
	t.Fatalf("value %d without a %q line", v, prefix)
}

func FuzzParseStatusUID(f *testing.F) {
	if data, err := os.ReadFile(filepath.Join("testdata", "proc", "good", "813", "status")); err == nil {
		f.Add(string(data))
	}
	for _, s := range []string{"", "Uid:", "Uid:\t1\t2\t3\t4", "Name:\tx\nUid:\t-1\n", "Uid: 4294967296\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		uid, err := parseStatusUID(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %q does not wrap ErrMalformed", err)
			}
			return
		}
		checkLineValue(t, data, "Uid:", uint64(uid))
	})
}

func FuzzParseStatusThreads(f *testing.F) {
	for _, s := range []string{"", "Threads:", "Threads:\t4\n", "Name:\tx\nThreads:\t-1\n", "Threads: 99999999999\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		n, err := parseStatusThreads(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %q does not wrap ErrMalformed", err)
			}
			return
		}
		checkLineValue(t, data, "Threads:", uint64(n))
	})
}

func FuzzParseBootTime(f *testing.F) {
	if data, err := os.ReadFile(filepath.Join("testdata", "proc", "good", "stat")); err == nil {
		f.Add(string(data))
	}
	for _, s := range []string{"", "btime", "btime 1", "cpu 1\nbtime 9223372036854775807\n", "btime -1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		boot, err := parseBootTime(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %q does not wrap ErrMalformed", err)
			}
			return
		}
		checkLineValue(t, data, "btime ", uint64(boot.Unix()))
	})
}

func FuzzParseMapsLine(f *testing.F) {
	for _, s := range []string{
		"7f2c8a000000-7f2c8a021000 rw-s 00000000 00:1a 12345  /dev/shm/ShM.abc",
		"7f4bdf51e000-7f4bdf651000 rw-p 00000000 00:00 0 ",
		"1000-2000 r--s 00000000 00:1b 2      /dev/shm/my test file (deleted)",
		"", "1-2 rwxp 0 0:0 0", "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		inode, path, ok := parseMapsLine(line)
		if !ok {
			if inode != 0 || path != "" {
				t.Fatalf("not ok but %d, %q", inode, path)
			}
			return
		}
		f := strings.Fields(line)
		if !strings.HasSuffix(line, path) || strings.HasPrefix(path, " ") || len(f) < 5 {
			t.Fatalf("path %q inconsistent with %q", path, line)
		}
		if n, err := strconv.ParseUint(f[4], 10, 64); err != nil || n != inode {
			t.Fatalf("inode %d inconsistent with %q", inode, line)
		}
	})
}
