package verify

import (
	"cmp"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// maxLogScan bounds how much of one compressed rotated log is
// decompressed while looking for its end.
const maxLogScan = 256 << 20

// rotationSlack absorbs the clock resolution between a master's start
// time (/proc, in clock ticks) and a file's modification time: a rotated
// file last written this long before the master started is still read.
const rotationSlack = 2 * time.Second

// MasterLog returns what the server's error log recorded since a master
// started, for counting its reloads: the current file and the files
// logrotate renamed from it, oldest first, so that a count survives
// rotation. logrotate renames the log and then reloads the server, whose
// restart notice still goes to the renamed file while the reopened one
// starts with "resuming normal operations" (REFERENCE.md §6). The rotated
// files are path.N, path.N.gz (compress, delaycompress) and path-DATE,
// path-DATE.gz (dateext), taken newest first by modification time until
// one was last written before since (the master's start): that one and
// the older ones cannot hold its lines. The text is bounded by
// maxLogRead: when the files hold more, it is the newest part, so a count
// over it is a lower bound. A log that is not a file (piped, syslog)
// returns "".
func MasterLog(serverRoot, errorLog string, since time.Time) string {
	path := LogFilePath(serverRoot, errorLog)
	if path == "" {
		return ""
	}
	var parts []string // newest first
	budget := int64(maxLogRead)
	for i, f := range append([]string{path}, rotatedLogs(path, since)...) {
		text, whole, err := readTail(f, budget)
		if i == 0 && errors.Is(err, fs.ErrNotExist) {
			continue // rotated, not yet created again: the rotated files count
		}
		parts = append(parts, text)
		budget -= int64(len(text))
		if err != nil || !whole || budget <= 0 {
			break // what is older would not be next to what was read
		}
	}
	slices.Reverse(parts)
	return strings.Join(parts, "")
}

// LogFilePath is the path of the error log file, "" when the log is not a
// file (piped, syslog).
func LogFilePath(serverRoot, errorLog string) string {
	if errorLog == "" || strings.HasPrefix(errorLog, "|") || strings.HasPrefix(errorLog, "syslog") {
		return ""
	}
	if !filepath.IsAbs(errorLog) {
		errorLog = filepath.Join(serverRoot, errorLog)
	}
	return errorLog
}

// rotatedLogs lists the files logrotate renamed from path, newest first,
// that were written since the master started.
func rotatedLogs(path string, since time.Time) []string {
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		return nil
	}
	type rotated struct {
		name string
		mod  time.Time
	}
	var found []rotated
	base := filepath.Base(path)
	for _, e := range entries {
		if !e.Type().IsRegular() || !isRotatedName(base, e.Name()) {
			continue
		}
		if fi, err := e.Info(); err == nil {
			found = append(found, rotated{e.Name(), fi.ModTime()})
		}
	}
	slices.SortFunc(found, func(a, b rotated) int {
		if c := b.mod.Compare(a.mod); c != 0 {
			return c
		}
		return rotationOrder(base, a.name, b.name)
	})
	var out []string
	for _, r := range found {
		if r.mod.Before(since.Add(-rotationSlack)) {
			break
		}
		out = append(out, filepath.Join(filepath.Dir(path), r.name))
	}
	return out
}

// isRotatedName reports whether name is a rotation of base: base.N,
// base-DIGITS, either optionally followed by .gz.
func isRotatedName(base, name string) bool {
	rest, ok := strings.CutPrefix(name, base)
	if !ok || len(rest) < 2 || (rest[0] != '.' && rest[0] != '-') {
		return false
	}
	rest = strings.TrimSuffix(rest[1:], ".gz")
	return rest != "" && strings.Trim(rest, "0123456789") == ""
}

// rotationOrder orders two rotations of base written in the same clock
// tick: base.1 before base.2.gz, base-20250102 before base-20250101.
func rotationOrder(base, a, b string) int {
	na, errA := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(a, base+"."), ".gz"))
	nb, errB := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(b, base+"."), ".gz"))
	if errA == nil && errB == nil {
		return cmp.Compare(na, nb)
	}
	return strings.Compare(b, a)
}

// readTail returns the last max bytes of the log file at path (a .gz
// decompressed), starting at a line, and whether that is the whole file.
func readTail(path string, max int64) (string, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		z, err := gzip.NewReader(f)
		if err != nil {
			return "", false, fmt.Errorf("%s: %w", path, err)
		}
		defer z.Close()
		r = io.LimitReader(z, maxLogScan+1)
	} else if fi, err := f.Stat(); err == nil && fi.Size() > max {
		if _, err := f.Seek(fi.Size()-max-1, io.SeekStart); err != nil {
			return "", false, err
		}
	}
	data, total, err := lastBytes(r, max)
	if err == nil && total > maxLogScan {
		err = fmt.Errorf("%s: more than %d bytes decompressed", path, maxLogScan)
	}
	if err != nil {
		return "", false, err
	}
	text, whole := string(data), total <= max
	if !whole {
		_, text, _ = strings.Cut(text, "\n") // a cut first line is dropped
	}
	return text, whole, nil
}

// lastBytes reads r to its end and returns its last max+1 bytes at most,
// and how many bytes it read.
func lastBytes(r io.Reader, max int64) ([]byte, int64, error) {
	var buf []byte
	chunk := make([]byte, 64<<10)
	total := int64(0)
	for {
		n, err := r.Read(chunk)
		buf = append(buf, chunk[:n]...)
		total += int64(n)
		if int64(len(buf)) > 2*(max+1) {
			buf = append(buf[:0], buf[int64(len(buf))-max-1:]...)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, total, err
		}
	}
	if int64(len(buf)) > max+1 {
		buf = buf[int64(len(buf))-max-1:]
	}
	return buf, total, nil
}
