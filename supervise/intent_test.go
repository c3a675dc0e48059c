package supervise

import (
	"os"
	"testing"
)

// TestReadIntentSuccessor: an intent whose old master has exited is kept
// while its successor lives (the pidfile may still need writing), and
// cleared once the successor is gone too; a live master is returned as
// it is.
func TestReadIntentSuccessor(t *testing.T) {
	dir := t.TempDir()
	oldCmd, old := startHelper(t, "old")
	newCmd, successor := startHelper(t, "new")
	if err := saveIntent(dir, "svc", old, &successor); err != nil {
		t.Fatal(err)
	}
	in, err := readIntent(dir, "/proc", "svc")
	if err != nil || in == nil || in.MasterGone || in.Master.PID != old.PID || in.Successor == nil || in.Successor.PID != successor.PID {
		t.Fatalf("both alive: readIntent = %+v, %v", in, err)
	}
	_ = oldCmd.Process.Kill()
	_ = oldCmd.Wait()
	in, err = readIntent(dir, "/proc", "svc")
	if err != nil || in == nil || !in.MasterGone || in.Successor == nil {
		t.Fatalf("old master gone: readIntent = %+v, %v; want the successor, MasterGone", in, err)
	}
	if p, err := pendingStop(dir, "/proc", "svc"); err != nil || p != nil {
		t.Fatalf("old master gone: pendingStop = %v, %v; want none", p, err)
	}
	_ = newCmd.Process.Kill()
	_ = newCmd.Wait()
	if in, err = readIntent(dir, "/proc", "svc"); err != nil || in != nil {
		t.Fatalf("both gone: readIntent = %+v, %v; want none", in, err)
	}
	if _, err := os.Stat(intentPath(dir, "svc")); !os.IsNotExist(err) {
		t.Fatalf("both gone: the intent is left: %v", err)
	}
}
