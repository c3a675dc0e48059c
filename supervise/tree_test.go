package supervise

import (
	"net"
	"os"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"

	"github.com/safe-restart/safe-restart/ipcguard"
)

func TestDescendants(t *testing.T) {
	const exe = "/usr/sbin/apache2"
	procs := ipcguard.ProcTable{ByPID: map[int]ipcguard.Proc{}}
	for _, p := range []ipcguard.Proc{
		{PID: 100, PPID: 1, Exe: exe, Comm: "apache2", State: 'S'},
		{PID: 103, PPID: 100, Exe: exe, Comm: "apache2", State: 'S'},
		{PID: 101, PPID: 100, Exe: exe, Comm: "apache2", State: 'S'},
		{PID: 102, PPID: 100, Exe: "/usr/bin/rotatelogs", Comm: "rotatelogs", State: 'S'},
		{PID: 104, PPID: 101, Exe: exe, Comm: "apache2", State: 'S'}, // a grandchild (mod_cgid's daemon forks)
		{PID: 105, PPID: 100, Exe: exe, Comm: "apache2", State: 'Z'}, // exited
		{PID: 200, PPID: 1, Exe: exe, Comm: "apache2", State: 'S'},   // another instance
		{PID: 201, PPID: 200, Exe: exe, Comm: "apache2", State: 'S'},
	} {
		procs.ByPID[p.PID] = p
	}
	got := pids(Descendants(procs, procs.ByPID[100], exe))
	if want := []int{100, 101, 103, 104}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Descendants = %v, want %v", got, want)
	}
}

func TestApacheLadder(t *testing.T) {
	l := ApacheLadder(DefaultGracefulWait)
	if len(l) != 3 || l[0].Signal != syscall.SIGWINCH || l[0].Wait != DefaultGracefulWait || !l[2].All {
		t.Fatalf("ApacheLadder(%s) = %v", DefaultGracefulWait, l)
	}
	if l := ApacheLadder(0); len(l) != 2 || l[0].Signal != syscall.SIGTERM || !l[1].All {
		t.Fatalf("ApacheLadder(0) = %v, want TERM first", l)
	}
}

// TestOrphansOnlyTheServersBinary: a process merely named like the server
// is never taken for an orphan (orphans get signalled).
func TestOrphansOnlyTheServersBinary(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	me, err := ipcguard.ReadProc("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	me.UID, me.PPID = 33, 1 // a worker of a dead master, as the table would show it
	procs := ipcguard.ProcTable{ByPID: map[int]ipcguard.Proc{me.PID: me}}
	// This process holds a listener, runs as User and has no parent running
	// its binary: an orphan of its own binary.
	got, err := Orphans("/proc", procs, self, 33, nil)
	if err != nil || len(got) != 1 || got[0].PID != me.PID {
		t.Fatalf("Orphans(own binary) = %v, %v; want this process", pids(got), err)
	}
	// Named like another binary, it is not an orphan of that binary.
	other := filepath.Join(t.TempDir(), me.Comm)
	if err := os.WriteFile(other, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := Orphans("/proc", procs, other, 33, nil); err != nil || len(got) != 0 {
		t.Errorf("Orphans(a binary with the same name) = %v, %v; want none", pids(got), err)
	}
}
