package doctor

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/safe-restart/safe-restart/supervise/server"
)

// logScanBytes bounds how much of each log file doctor reads: its end.
const logScanBytes = 8 << 20

// logCheck is one kind of log line that announces an outage.
type logCheck struct {
	check    string
	severity Severity
	summary  string
	marks    []string // any of these in a line
	fix      string
}

// logChecks are tried in order; a line counts for the first that matches
// (fork() failed: Cannot allocate memory is a fork failure).
var logChecks = []logCheck{
	{check: "log-fork-failed", severity: Critical, summary: "the server could not fork workers",
		marks: []string{"fork() failed", "Unable to fork new process", "fork: Resource temporarily unavailable", "fork: Cannot allocate memory"},
		fix:   "memory or the process limit ran out: find what grows (safe-restart doctor after a while compares php-fpm workers' memory), cap workers (pm.max_children, MaxRequestWorkers) to the memory, recycle workers (pm.max_requests, MaxConnectionsPerChild)"},
	{check: "log-oom", severity: Critical, summary: "the server ran out of memory",
		marks: []string{"Out of memory", "out of memory", "Cannot allocate memory", "oom-kill", "Killed process"},
		fix:   "size the workers to the memory (pm.max_children, MaxRequestWorkers), recycle them (pm.max_requests, MaxConnectionsPerChild), and look for the leak"},
	{check: "log-segfault", severity: Warning, summary: "server processes crashed with a segmentation fault",
		marks: []string{"Segmentation fault", "SIGSEGV", "exited on signal 11", "segfault at"},
		fix:   "find the crashing module or extension (a core dump: CoreDumpDirectory for Apache, rlimit_core for php-fpm); until then recycle workers (pm.max_requests, MaxConnectionsPerChild)"},
	{check: "log-sigkill", severity: Warning, summary: "server processes were killed with SIGKILL",
		marks: []string{"exited on signal 9"},
		fix:   "find who sent it: the kernel's OOM killer (`dmesg | grep -i 'killed process'` names its victims), php-fpm's request_terminate_timeout (it logs \"execution timed out\" first), or a kill -9; the requests those processes served failed"},
	{check: "log-seems-busy", severity: Warning, summary: "php-fpm's pool ran out of idle workers",
		marks: []string{"] seems busy ("},
		fix:   "raise pm.start_servers / pm.min_spare_servers / pm.max_spare_servers (and pm.max_children, within memory), or find the slow requests (request_slowlog_timeout)"},
}

// logFindings scans the end of the server's error log and its first
// rotation (.1) for the lines of logChecks. Lines about a client request
// are skipped: a client can put any text in a logged URI.
func logFindings(service string, rc server.RunConfig) ([]Finding, []string) {
	path := rc.ErrorLog
	if path == "" || strings.HasPrefix(path, "|") || strings.HasPrefix(path, "syslog") {
		return nil, nil
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(rc.ServerRoot, path)
	}
	type hits struct {
		n    int
		last string
		file string
	}
	found := make([]hits, len(logChecks))
	var notes []string
	for _, f := range []string{path + ".1", path} { // oldest first: the last hit is the newest
		text, err := readEnd(f, logScanBytes)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				notes = append(notes, err.Error())
			}
			continue
		}
		for _, line := range strings.Split(text, "\n") {
			if i := matchLogCheck(line); i >= 0 {
				found[i] = hits{n: found[i].n + 1, last: strings.TrimSpace(line), file: f}
			}
		}
	}
	var out []Finding
	for i, h := range found {
		if h.n == 0 {
			continue
		}
		c := logChecks[i]
		out = append(out, Finding{Check: c.check, Service: service, Severity: c.severity,
			Summary: fmt.Sprintf("%s: %d line(s) in the error log", c.summary, h.n),
			Evidence: []string{fmt.Sprintf("%d line(s) in %s and %s.1 (the last %d MiB of each)", h.n, path, path, logScanBytes>>20),
				"last, in " + h.file + ": " + h.last},
			Fix: c.fix})
	}
	return out, notes
}

// matchLogCheck returns the index of the first log check line matches, -1
// for none.
func matchLogCheck(line string) int {
	if strings.Contains(line, "[client ") || strings.Contains(line, ", client: ") {
		return -1
	}
	for i, c := range logChecks {
		for _, m := range c.marks {
			if strings.Contains(line, m) {
				return i
			}
		}
	}
	return -1
}

// readEnd returns the last limit bytes of the file, from the first whole
// line.
func readEnd(path string, limit int64) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	off := max(0, fi.Size()-limit)
	data, err := io.ReadAll(io.NewSectionReader(f, off, limit))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	text := string(data)
	if off > 0 {
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			text = text[i+1:]
		}
	}
	return text, nil
}
