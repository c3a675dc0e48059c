package ipcguard

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// statFields is how many fields /proc/PID/stat must have for parseStat:
// it reads up to field 22, starttime.
const statFields = 22

// parseStat parses data, the text of /proc/PID/stat, into a Proc with PID,
// Comm, State, PPID and StartTicks set (fields 1, 2, 3, 4 and 22). Comm is
// the text between the first '(' and the LAST ')', since a command name may
// itself hold spaces, parentheses and newlines. Malformed or truncated
// input is an error wrapping ErrMalformed that names line 1; the caller
// names the file.
//
//	12516 (cat) R 12514 12514 8468 0 -1 4194304 98 0 0 0 0 0 0 0 20 0 1 0 99511 3133440 394 ...
func parseStat(data string) (Proc, error) {
	line := strings.TrimSuffix(data, "\n")
	open, end := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
	if open < 2 || end < open || line[open-1] != ' ' {
		return Proc{}, malformedLine(1, "no \"PID (comm)\" at the start")
	}
	pid, ok := parseDigits(line[:open-1], 10, math.MaxInt32)
	if !ok || pid == 0 {
		return Proc{}, malformedLine(1, "bad pid %q", line[:open-1])
	}
	p, err := parseStatTail(line[end+1:])
	if err != nil {
		return Proc{}, fmt.Errorf("%w: line 1: %w", ErrMalformed, err)
	}
	p.PID, p.Comm = int(pid), line[open+1:end]
	return p, nil
}

// parseStatTail parses what follows the comm of a stat line: " " then
// fields 3 onwards, of which it reads state, ppid and starttime.
func parseStatTail(tail string) (Proc, error) {
	if !strings.HasPrefix(tail, " ") {
		return Proc{}, fmt.Errorf("no space after comm")
	}
	f := strings.Fields(tail)
	if len(f) < statFields-2 {
		return Proc{}, fmt.Errorf("want at least %d fields, got %d", statFields, len(f)+2)
	}
	if len(f[0]) != 1 || !isLetter(f[0][0]) {
		return Proc{}, fmt.Errorf("field 3: bad state %q", f[0])
	}
	ppid, ok := parseDigits(f[1], 10, math.MaxInt32)
	if !ok {
		return Proc{}, fmt.Errorf("field 4: bad ppid %q", f[1])
	}
	// A process being reaped as the table is read shows session -1
	// (seen with kernel 6.18: a php-fpm worker reaped by its supervisor):
	// it leads no session.
	sid, ok := parseDigits(f[3], 10, math.MaxInt32)
	if f[3] == "-1" {
		sid, ok = 0, true
	}
	if !ok {
		return Proc{}, fmt.Errorf("field 6: bad session %q", f[3])
	}
	start, ok := parseDigits(f[statFields-3], 10, math.MaxUint64)
	if !ok {
		return Proc{}, fmt.Errorf("field 22: bad starttime %q", f[statFields-3])
	}
	return Proc{State: f[0][0], PPID: int(ppid), Session: int(sid), StartTicks: start}, nil
}

// isLetter reports whether c is an ASCII letter, as process states are.
func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// parseStatusUID returns the real uid, the first number of the "Uid:" line
// of data, the text of /proc/PID/status. A missing or bad line is an error
// wrapping ErrMalformed (naming the line when there is one); the caller
// names the file.
//
//	Uid:	33	33	33	33
func parseStatusUID(data string) (uint32, error) {
	rest, n, ok := findLine(data, "Uid:")
	if !ok {
		return 0, fmt.Errorf("%w: no Uid: line", ErrMalformed)
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return 0, malformedLine(n, "empty Uid: line")
	}
	uid, ok := parseDigits(f[0], 10, math.MaxUint32)
	if !ok {
		return 0, malformedLine(n, "bad real uid %q", f[0])
	}
	return uint32(uid), nil
}

// parseStatusThreads returns the "Threads:" count of /proc/PID/status. A
// zombie thread-group leader whose other threads still run shows state Z
// in /proc/PID/stat and more than one thread here.
//
//	Threads:	4
func parseStatusThreads(data string) (int, error) {
	rest, n, ok := findLine(data, "Threads:")
	if !ok {
		return 0, fmt.Errorf("%w: no Threads: line", ErrMalformed)
	}
	v, ok := parseDigits(strings.TrimSpace(rest), 10, math.MaxInt32)
	if !ok {
		return 0, malformedLine(n, "bad Threads: %q", strings.TrimSpace(rest))
	}
	return int(v), nil
}

// parseBootTime returns the boot time in the "btime" line of data, the text
// of /proc/stat (Unix seconds). A missing or bad line is an error wrapping
// ErrMalformed (naming the line when there is one); the caller names the
// file.
//
//	btime 1795436383
func parseBootTime(data string) (time.Time, error) {
	rest, n, ok := findLine(data, "btime ")
	if !ok {
		return time.Time{}, fmt.Errorf("%w: no btime line", ErrMalformed)
	}
	f := strings.Fields(rest)
	if len(f) != 1 {
		return time.Time{}, malformedLine(n, "want one number after btime, got %d fields", len(f))
	}
	sec, ok := parseDigits(f[0], 10, math.MaxInt64)
	if !ok {
		return time.Time{}, malformedLine(n, "bad btime %q", f[0])
	}
	return time.Unix(int64(sec), 0), nil
}

// findLine returns what follows prefix on the first line of data that
// starts with it, and that line's 1-based number.
func findLine(data, prefix string) (rest string, n int, ok bool) {
	for n = 1; data != ""; n++ {
		line, tail, _ := strings.Cut(data, "\n")
		if rest, ok = strings.CutPrefix(line, prefix); ok {
			return rest, n, true
		}
		data = tail
	}
	return "", 0, false
}

// malformedLine returns an error wrapping ErrMalformed that names line n.
func malformedLine(n int, format string, a ...any) error {
	return fmt.Errorf("%w: line %d: %s", ErrMalformed, n, fmt.Sprintf(format, a...))
}
