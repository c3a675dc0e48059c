package supervise

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// fatalMarks are the lines that mean a start or reload killed, or will
// kill, the server (REFERENCE.md §1-§3, §7): out of semaphores, port taken,
// mutex removed under it, child fatal, config failure, pthread keys gone.
var fatalMarks = []string{"AH00023", "AH00072", "AH00144", "AH00146", "AH00050", "AH00020", "AH00015",
	"Configuration Failed", "libgomp:"}

// fatalLines returns the lines of text that carry a fatal mark.
func fatalLines(text string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		for _, m := range fatalMarks {
			if strings.Contains(line, m) {
				out = append(out, strings.TrimSpace(line))
				break
			}
		}
	}
	return out
}

// logTail remembers where a log file ended, to read what is written after.
type logTail struct {
	path   string
	offset int64
}

// newLogTail marks the current end of the server's error log. A log that
// is not a plain file (piped, syslog) has no tail: "" is returned later.
func newLogTail(serverRoot, errorLog string) logTail {
	if errorLog == "" || strings.HasPrefix(errorLog, "|") || strings.HasPrefix(errorLog, "syslog") {
		return logTail{}
	}
	if !filepath.IsAbs(errorLog) {
		errorLog = filepath.Join(serverRoot, errorLog)
	}
	t := logTail{path: errorLog}
	if fi, err := os.Stat(errorLog); err == nil {
		t.offset = fi.Size()
	}
	return t
}

// maxLogRead bounds how much of an error log one check reads.
const maxLogRead = 16 << 20

// since returns what was written to the log after the mark (from the
// start if the file was rotated and is now shorter).
func (t logTail) since() string {
	if t.path == "" {
		return ""
	}
	f, err := os.Open(t.path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() >= t.offset {
		_, _ = f.Seek(t.offset, io.SeekStart)
	}
	data, _ := io.ReadAll(io.LimitReader(f, maxLogRead))
	return string(data)
}

// checkServes connects to every listener and sends one GET to the first
// (or to healthURL): any HTTP answer below 500 counts.
func checkServes(listeners []Listener, healthURL string, timeout time.Duration) error {
	if len(listeners) == 0 {
		return errors.New("the master holds no listening socket")
	}
	for _, l := range listeners {
		c, err := net.DialTimeout("tcp", dialable(l.Addr), timeout)
		if err != nil {
			return fmt.Errorf("listener %s does not accept: %w", l.Addr, err)
		}
		c.Close()
	}
	if healthURL == "" {
		healthURL = "http://" + dialable(listeners[0].Addr) + "/"
	}
	client := http.Client{Timeout: timeout}
	resp, err := client.Get(healthURL)
	if err != nil {
		return fmt.Errorf("health check %s: %w", healthURL, err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return fmt.Errorf("health check %s: %s", healthURL, resp.Status)
	}
	return nil
}

// dialable turns a wildcard listen address into a loopback one.
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	switch host {
	case "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}
