package verify

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/safe-restart/safe-restart/internal/apachetest"
	"github.com/safe-restart/safe-restart/internal/nstest"
	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/server"
)

// TestApacheReloadsAcrossRotation: the real logrotate, with Debian's
// options (compress, delaycompress) and postrotate (a graceful reload),
// renames the log between reloads; the count of this master's reloads
// goes on across the current file, error.log.1 and error.log.2.gz, while
// the current file alone holds none of its restart notices.
func TestApacheReloadsAcrossRotation(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "logrotate")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := apachetest.Start(t, apachetest.Config{MPM: "event", Extra: "LogLevel warn"}) // Debian's level
	master, err := ipcguard.ReadProc("/proc", srv.MasterPID())
	if err != nil {
		t.Fatal(err)
	}
	count := func() int {
		return apacheDriver(t).ReloadsLogged(MasterLog(srv.Dir, srv.ErrorLog, master.Start), master)
	}
	for range 3 {
		srv.Graceful()
	}
	if n := count(); n != 3 {
		t.Fatalf("after 3 reloads: %d", n)
	}
	srv.Logrotate() // its reload is the 4th
	srv.Graceful()
	srv.Logrotate() // the 6th; error.log.1 becomes error.log.2.gz
	if n := count(); n != 6 {
		t.Fatalf("after 6 reloads, two of them logrotate's: %d", n)
	}
	for _, f := range []string{srv.ErrorLog + ".1", srv.ErrorLog + ".2.gz"} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("logrotate did not leave %s: %v", f, err)
		}
	}
	if n := apacheDriver(t).ReloadsLogged(srv.ErrorLogText(), master); n != 0 {
		t.Errorf("the current file alone counts %d; want 0 (the restart notice went to the renamed file)", n)
	}
	t.Logf("current log after rotation:\n%s", srv.ErrorLogText())
}

// TestApacheReloadsPIDReused: a master that reuses the pid of one in the
// same log counts only from its own start ("resuming" with no restart
// notice before it).
func TestApacheReloadsPIDReused(t *testing.T) {
	const log = `[Sun Nov 29 04:46:12.6 2026] [mpm_event:notice] [pid 8:tid 8] AH00489: Apache/2.4.71 (Debian) configured -- resuming normal operations
[Sun Nov 29 04:46:12.7 2026] [mpm_event:notice] [pid 8:tid 8] AH00493: SIGUSR1 received.  Doing graceful restart
[Sun Nov 29 04:46:12.7 2026] [mpm_event:notice] [pid 8:tid 8] AH00489: Apache/2.4.71 (Debian) configured -- resuming normal operations
[Sun Nov 29 04:46:12.8 2026] [mpm_event:notice] [pid 8:tid 8] AH00491: caught SIGTERM, shutting down
[Sun Nov 29 04:47:12.6 2026] [mpm_event:notice] [pid 8:tid 8] AH00489: Apache/2.4.71 (Debian) configured -- resuming normal operations
[Sun Nov 29 04:47:12.7 2026] [mpm_event:notice] [pid 8:tid 8] AH00493: SIGUSR1 received.  Doing graceful restart
[Sun Nov 29 04:47:12.7 2026] [mpm_event:notice] [pid 8:tid 8] AH00489: Apache/2.4.71 (Debian) configured -- resuming normal operations
[Sun Nov 29 04:47:12.8 2026] [mpm_prefork:notice] [pid 8:tid 8] AH00173: SIGHUP received.  Attempting to restart
`
	if n := apacheDriver(t).ReloadsLogged(log, ipcguard.Proc{PID: 8}); n != 2 {
		t.Errorf("reloads = %d, want 2 (the earlier master's reload is not this one's)", n)
	}
}

// TestMasterLog: the rotated files are read oldest first after the
// current one, down to the first last written before the master started;
// other names are not rotations; a bound keeps the newest part.
func TestMasterLog(t *testing.T) {
	dir := t.TempDir()
	start := time.Now().Add(-time.Hour)
	write := func(name, text string, mod time.Time) {
		data := []byte(text)
		if strings.HasSuffix(name, ".gz") {
			var b bytes.Buffer
			z := gzip.NewWriter(&b)
			z.Write(data)
			z.Close()
			data = b.Bytes()
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	write("error.log", "d\n", time.Now())
	write("error.log.1", "c\n", start.Add(30*time.Minute))
	write("error.log.2.gz", "b\n", start.Add(10*time.Minute))
	write("error.log.3.gz", "a\n", start.Add(-time.Minute)) // before the start
	write("error.log.bak", "x\n", time.Now())
	write("error.log-20261129", "y\n", start.Add(20*time.Minute))
	if got := MasterLog(dir, "error.log", start); got != "b\ny\nc\nd\n" {
		t.Errorf("masterLog = %q", got)
	}
	if got := MasterLog(dir, "|/usr/bin/logger", start); got != "" {
		t.Errorf("piped log = %q", got)
	}
	os.Remove(filepath.Join(dir, "error.log"))
	if got := MasterLog(dir, "error.log", start); got != "b\ny\nc\n" {
		t.Errorf("without the current file (rotated, not yet created) = %q", got)
	}
	if text, whole, err := readTail(filepath.Join(dir, "error.log.1"), 1); err != nil || whole || text != "" {
		t.Errorf("a tail shorter than a line: %q %v %v", text, whole, err)
	}
	write("big.log", "one\ntwo\nthree\n", time.Now())
	if text, whole, err := readTail(filepath.Join(dir, "big.log"), 7); err != nil || whole || text != "three\n" {
		t.Errorf("the last 7 bytes from a line: %q %v %v", text, whole, err)
	}
	write("big.log.2.gz", "one\ntwo\nthree\n", time.Now())
	if text, whole, err := readTail(filepath.Join(dir, "big.log.2.gz"), 9); err != nil || whole || text != "three\n" {
		t.Errorf("the last 9 bytes of a .gz from a line: %q %v %v", text, whole, err)
	}
}

// apacheDriver is the apache2 profile's driver.
func apacheDriver(t *testing.T) server.Driver {
	t.Helper()
	p, err := server.LookupProfile("apache2")
	if err != nil {
		t.Fatal(err)
	}
	return p.Driver
}
