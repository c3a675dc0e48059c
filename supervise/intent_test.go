package supervise

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/safe-restart/safe-restart/internal/proctest"
	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/server"
)

// TestReadIntentSuccessor: an intent whose old master has exited is kept
// while its successor lives (the pidfile may still need writing), and
// cleared once the successor is gone too; a live master is returned as
// it is.
func TestReadIntentSuccessor(t *testing.T) {
	dir := t.TempDir()
	exe := proctest.CopySelf(t, t.TempDir()) // the helpers' parent, this test, does not run it
	oldCmd, old := proctest.StartHelper(t, exe, "old", nil)
	newCmd, successor := proctest.StartHelper(t, exe, "new", nil)
	if err := saveIntent(dir, "svc", old, &successor); err != nil {
		t.Fatal(err)
	}
	in, err := readIntent(dir, "/proc", server.Profile{Name: "svc", Binary: exe}, "")
	if err != nil || in == nil || in.MasterGone || in.Master.PID != old.PID || in.Successor == nil || in.Successor.PID != successor.PID {
		t.Fatalf("both alive: readIntent = %+v, %v", in, err)
	}
	_ = oldCmd.Process.Kill()
	_ = oldCmd.Wait()
	in, err = readIntent(dir, "/proc", server.Profile{Name: "svc", Binary: exe}, "")
	if err != nil || in == nil || !in.MasterGone || in.Successor == nil {
		t.Fatalf("old master gone: readIntent = %+v, %v; want the successor, MasterGone", in, err)
	}
	if p, err := pendingStop(dir, "/proc", server.Profile{Name: "svc", Binary: exe}, ""); err != nil || p != nil {
		t.Fatalf("old master gone: pendingStop = %v, %v; want none", p, err)
	}
	_ = newCmd.Process.Kill()
	_ = newCmd.Wait()
	if in, err = readIntent(dir, "/proc", server.Profile{Name: "svc", Binary: exe}, ""); err != nil || in != nil {
		t.Fatalf("both gone: readIntent = %+v, %v; want none", in, err)
	}
	if _, err := os.Stat(intentPath(dir, "svc")); !os.IsNotExist(err) {
		t.Fatalf("both gone: the intent is left: %v", err)
	}
}

// TestReadIntentProven: a stop record is trusted only when it proves out
// as a pidfile does: one naming a process of another program, a worker
// (a child of a process running the server's binary), or another service
// is an error that names the file, and the record is left for the
// operator to look at.
func TestReadIntentProven(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	_, worker := proctest.StartHelper(t, os.Args[0], "block", nil) // a child of this test, which runs self
	_, other := proctest.StartHelper(t, os.Args[0], "block", nil)
	for _, c := range []struct {
		name, service, exe string
		master             ipcguard.Proc
		says               string
	}{
		{"another program", "svc", "/usr/sbin/apache2", other, "not /usr/sbin/apache2"},
		{"a worker", "svc", self, worker, "a worker, not the master"},
		{"another service", "other", self, worker, `is for service "other"`},
	} {
		dir := t.TempDir()
		if err := saveIntent(dir, c.service, c.master, nil); err != nil {
			t.Fatal(err)
		}
		if c.service != "svc" {
			if err := os.Rename(intentPath(dir, c.service), intentPath(dir, "svc")); err != nil {
				t.Fatal(err)
			}
		}
		in, err := readIntent(dir, "/proc", server.Profile{Name: "svc", Binary: c.exe}, "")
		if in != nil || !errors.Is(err, proc.ErrForeignProcess) || !strings.Contains(err.Error(), c.says) || !strings.Contains(err.Error(), intentPath(dir, "svc")) {
			t.Errorf("%s: readIntent = %+v, %v; want ErrForeignProcess naming the file and saying %q", c.name, in, err, c.says)
		}
		if _, err := os.Stat(intentPath(dir, "svc")); err != nil {
			t.Errorf("%s: the record was removed: %v", c.name, err)
		}
	}
}
