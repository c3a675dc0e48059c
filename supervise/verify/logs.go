package verify

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
)

// rotatedName matches the names logrotate gives rotated logs: error.log.1,
// error.log.2.gz, error.log-20261123 (dateext), and RHEL's error_log-20261123.
var rotatedName = regexp.MustCompile(`[._]log(\.\d+|-\d{8,10})(\.gz|\.xz|\.zst|\.bz2)?$`)

// RotatedHolders returns the processes running the server binary that still
// hold open a rotated or deleted file in logDir, by pid: after a graceful
// reload, children of the old generation keep their log fds until they
// finish their requests, and compressing or deleting the file under them
// loses what they still write.
func RotatedHolders(procRoot, exe, logDir string) (map[int][]string, error) {
	procs, err := ipcguard.ReadProcTable(procRoot)
	if err != nil {
		return nil, err
	}
	out := map[int][]string{}
	for _, p := range proc.RunningExactly(procs, exe) {
		dir := filepath.Join(procRoot, strconv.Itoa(p.PID), "fd")
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue // exited meanwhile
		}
		for _, e := range entries {
			target, err := os.Readlink(filepath.Join(dir, e.Name()))
			if err != nil || filepath.Dir(strings.TrimSuffix(target, " (deleted)")) != logDir {
				continue
			}
			if strings.HasSuffix(target, " (deleted)") || rotatedName.MatchString(target) {
				out[p.PID] = append(out[p.PID], target)
			}
		}
	}
	return out, nil
}

// WaitLogsReleased waits, up to timeout, until no process of the server
// holds a rotated log in logDir, and returns the holders left.
func WaitLogsReleased(ctx context.Context, procRoot, exe, logDir string, timeout time.Duration) (map[int][]string, error) {
	deadline := time.Now().Add(timeout)
	for {
		held, err := RotatedHolders(procRoot, exe, logDir)
		if err != nil || len(held) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return held, err
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// LogDirMark is the size of every file in a directory at a mark, to read
// what a start wrote to the logs beside the error log (a virtual host's
// own error log, where mod_ssl reports that host's key).
type LogDirMark struct {
	dir   string
	sizes map[string]int64 // by path (see fileSizes)
}

// MarkLogDir marks the files in errorLog's directory ("" marks none).
func MarkLogDir(errorLog string) LogDirMark {
	if errorLog == "" {
		return LogDirMark{}
	}
	dir := filepath.Dir(errorLog)
	return LogDirMark{dir: dir, sizes: FileSizes([]string{dir}, false)}
}

// Grown returns what the log files of the marked directory, other than
// skip, gained since the mark (a new file: all of it).
func (m LogDirMark) Grown(skip string) string {
	if m.dir == "" {
		return ""
	}
	entries, _ := os.ReadDir(m.dir)
	var b strings.Builder
	for _, e := range entries {
		path := filepath.Join(m.dir, e.Name())
		if path == skip || !e.Type().IsRegular() || !LogName.MatchString(e.Name()) {
			continue
		}
		if f, err := os.Open(path); err == nil {
			b.WriteString(ReadFrom(f, m.sizes[path]))
			f.Close()
		}
	}
	return b.String()
}

// FileSizes returns the size of each regular file under dirs (at most
// maxMarkedFiles under each), by path; deep also looks in their
// subdirectories.
func FileSizes(dirs []string, deep bool) map[string]int64 {
	out := map[string]int64{}
	for _, dir := range dirs {
		n := 0
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			switch n++; {
			case n > MaxMarkedFiles:
				return filepath.SkipAll
			case err != nil:
				return nil
			case d.IsDir() && p != dir && !deep:
				return filepath.SkipDir
			}
			if fi, err := d.Info(); err == nil && fi.Mode().IsRegular() {
				out[p] = fi.Size()
			}
			return nil
		})
	}
	return out
}

// MaxMarkedFiles bounds the entries fileSizes (and the trial's emptying of
// logs) looks at under one directory.
const MaxMarkedFiles = 10000

// LogName matches the names of log files, emptied in the trial's overlay
// before its start.
var LogName = regexp.MustCompile(`[._-]log$|^log$|\.err$`)
