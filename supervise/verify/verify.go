package verify

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/safe-restart/safe-restart/supervise/sock"
)

// LogTail reads what a server writes to its error log after a mark, even
// when the log is rotated in between (logrotate renames the file, then a
// reload makes the server reopen it: the reload's own notice still goes to
// the renamed file). It keeps the file open at the mark, so the rest of the
// renamed file is read through that fd, then the new file at the path.
type LogTail struct {
	Path   string
	f      *os.File // the file at the mark; nil when there was none
	offset int64
}

// NewLogTail marks the current end of the server's error log. A log that
// is not a plain file (piped, syslog) has no tail: since returns "". The
// caller closes it.
func NewLogTail(serverRoot, errorLog string) *LogTail {
	errorLog = LogFilePath(serverRoot, errorLog)
	if errorLog == "" {
		return &LogTail{}
	}
	t := &LogTail{Path: errorLog}
	if f, err := os.Open(errorLog); err == nil {
		t.f = f
		if fi, err := f.Stat(); err == nil {
			t.offset = fi.Size()
		}
	}
	return t
}

// NewMasterLogTail marks the end of the error log that master writes now:
// Apache's master has its ErrorLog file on stderr, so /proc/PID/fd/2 is that
// file even after logrotate renamed it and created a new one at the path,
// before the reload that makes the server reopen it.
func NewMasterLogTail(procRoot string, pid int, serverRoot, errorLog string) *LogTail {
	t := NewLogTail(serverRoot, errorLog)
	if t.Path == "" {
		return t
	}
	f, err := os.Open(filepath.Join(procRoot, strconv.Itoa(pid), "fd", "2"))
	if err != nil {
		return t
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return t
	}
	t.Close()
	t.f, t.offset = f, fi.Size()
	return t
}

// Since returns what was written after the mark: the rest of the file
// marked, then, if the path now names another file, that file.
func (t *LogTail) Since() string {
	if t.Path == "" {
		return ""
	}
	var b strings.Builder
	if t.f != nil {
		b.WriteString(ReadFrom(t.f, t.offset))
	}
	cur, err := os.Open(t.Path)
	if err != nil {
		return b.String()
	}
	defer cur.Close()
	if t.f == nil || !sameFile(t.f, cur) {
		b.WriteString(ReadFrom(cur, 0))
	}
	return b.String()
}

// Readable reports whether the tail reads a file at all.
func (t *LogTail) Readable() bool { return t.Path != "" }

func (t *LogTail) Close() {
	if t.f != nil {
		t.f.Close()
		t.f = nil
	}
}

// maxLogRead bounds how much of a log one check reads.
const maxLogRead = 16 << 20

// ReadFrom reads f from off (from 0 if the file is now shorter: truncated).
func ReadFrom(f *os.File, off int64) string {
	if fi, err := f.Stat(); err == nil && fi.Size() < off {
		off = 0
	}
	data, _ := io.ReadAll(io.LimitReader(io.NewSectionReader(f, off, maxLogRead), maxLogRead))
	return string(data)
}

func sameFile(a, b *os.File) bool {
	ai, err1 := a.Stat()
	bi, err2 := b.Stat()
	return err1 == nil && err2 == nil && os.SameFile(ai, bi)
}

// CheckServes connects to every listener and sends one GET to healthURL,
// or, for a server that speaks HTTP, to its TCP listeners in address
// order until one answers: any HTTP answer below 500 counts. (A server may
// also listen for other protocols, nginx's stream and mail blocks: one
// listener that answers HTTP proves the server serves; --health-url says
// exactly what must.)
func CheckServes(listeners []sock.Listener, healthURL string, speaksHTTP bool, timeout time.Duration) error {
	if len(listeners) == 0 {
		return errors.New("the master holds no listening socket")
	}
	var tcp []string
	for _, l := range listeners {
		network, addr := l.Network(), l.Addr
		if network == "tcp" {
			addr = Dialable(addr)
			tcp = append(tcp, addr)
		}
		c, err := net.DialTimeout(network, addr, timeout)
		if err != nil {
			return fmt.Errorf("listener %s does not accept: %w", l.Addr, err)
		}
		c.Close()
	}
	if healthURL != "" {
		return HTTPGet(healthURL, timeout)
	}
	if !speaksHTTP || len(tcp) == 0 {
		return nil
	}
	slices.Sort(tcp)
	var errs []error
	for _, addr := range slices.Compact(tcp) {
		err := HTTPGet("http://"+addr+"/", timeout)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// HTTPGet fails unless url answers with a status below 500.
func HTTPGet(url string, timeout time.Duration) error {
	client := http.Client{Timeout: timeout}
	resp, err := client.Get(url)
	if err != nil {
		return fmt.Errorf("health check %s: %w", url, err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return fmt.Errorf("health check %s: %s", url, resp.Status)
	}
	return nil
}

// Dialable turns a wildcard listen address into a loopback one.
func Dialable(addr string) string {
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
