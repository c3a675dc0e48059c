package supervise

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
	"time"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/server"
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
	got := proc.PIDs(proc.Descendants(procs, procs.ByPID[100], exe))
	if want := []int{100, 101, 103, 104}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Descendants = %v, want %v", got, want)
	}
}

func TestApacheLadder(t *testing.T) {
	l := server.ApacheLadder(server.DefaultGracefulWait)
	if len(l) != 3 || l[0].Signal != syscall.SIGWINCH || l[0].Wait != server.DefaultGracefulWait || !l[2].All {
		t.Fatalf("ApacheLadder(%s) = %v", server.DefaultGracefulWait, l)
	}
	if l := server.ApacheLadder(0); len(l) != 2 || l[0].Signal != syscall.SIGTERM || !l[1].All {
		t.Fatalf("ApacheLadder(0) = %v, want TERM first", l)
	}
}

// TestOrphans: a cut-off worker whose master is dead is an orphan; a live
// master run as User (with or without children), a worker of a live
// master, root, and a process merely named like the server are not.
func TestOrphans(t *testing.T) {
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
	// Every case is this process (it holds a listener), described as the
	// process table would show it.
	worker := me
	worker.UID, worker.PPID, worker.Session = 33, 1, 999999 // re-parented; its master (the session leader) is gone
	sameName := filepath.Join(t.TempDir(), me.Comm)
	if err := os.WriteFile(sameName, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	other := func(pid, ppid, session int) ipcguard.Proc {
		return ipcguard.Proc{PID: pid, PPID: ppid, Session: session, State: 'S', UID: 33, Exe: self, Comm: me.Comm}
	}
	tests := []struct {
		name  string
		p     ipcguard.Proc
		extra []ipcguard.Proc
		exe   string
		want  int
	}{
		{"a worker cut off from its dead master", worker, nil, self, 1},
		{"a master run as User, with a child", func() ipcguard.Proc { p := worker; p.Session = p.PID; return p }(),
			[]ipcguard.Proc{other(1<<22, me.PID, me.PID)}, self, 0},
		{"a master run as User, childless", func() ipcguard.Proc { p := worker; p.Session = p.PID; return p }(), nil, self, 0},
		{"a worker whose session leader runs the server", worker, []ipcguard.Proc{other(999999, 1, 999999)}, self, 0},
		{"a process under a live session leader of another program (a shell)", worker,
			[]ipcguard.Proc{{PID: 999999, PPID: 1, Session: 999999, State: 'S', UID: 1000, Exe: "/bin/bash", Comm: "bash"}}, self, 0},
		{"a worker whose session leader is a zombie", worker,
			[]ipcguard.Proc{func() ipcguard.Proc { p := other(999999, 1, 999999); p.State = 'Z'; p.Threads = 1; return p }()}, self, 1},
		{"root", func() ipcguard.Proc { p := worker; p.UID = 0; return p }(), nil, self, 0},
		{"named like another binary", worker, nil, sameName, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			procs := ipcguard.ProcTable{ByPID: map[int]ipcguard.Proc{tt.p.PID: tt.p}}
			for _, e := range tt.extra {
				procs.ByPID[e.PID] = e
			}
			got, err := Orphans("/proc", procs, tt.exe, nil)
			if err != nil || len(got) != tt.want {
				t.Errorf("Orphans = %v, %v; want %d", proc.PIDs(got), err, tt.want)
			}
		})
	}
}

// TestLiveTree: the tree read through the kernel's children lists is the
// tree Descendants finds in the whole process table (a real shell whose
// children and grandchild are shells, which count, and sleeps, which do
// not).
func TestLiveTree(t *testing.T) {
	cmd := exec.Command("/bin/sh", "-c", `(sleep 60; :) & sleep 60 & /bin/sh -c "/bin/sh -c 'sleep 60; :'; :" & wait`)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	}()
	master, err := ipcguard.ReadProc("/proc", cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	// The tree is settled once its three sleeps run sleep (a shell forks
	// before it execs one).
	var want []int
	deadline := time.Now().Add(10 * time.Second)
	for sleeps := 0; sleeps < 3 && time.Now().Before(deadline); {
		procs, err := ipcguard.ReadProcTable("/proc")
		if err != nil {
			t.Fatal(err)
		}
		want, sleeps = proc.PIDs(proc.Descendants(procs, master, "/bin/sh")), len(proc.Descendants(procs, master, "/bin/sleep"))-1
		for _, p := range proc.Descendants(procs, master, "/bin/sh")[1:] {
			sleeps += len(proc.Descendants(procs, p, "/bin/sleep")) - 1
		}
		time.Sleep(5 * time.Millisecond)
	}
	if len(want) != 4 {
		t.Fatalf("the shell's tree is %v, want it, its two shells and a grandchild shell", want)
	}
	tree, err := proc.LiveTree("/proc", master, "/bin/sh")
	if err != nil {
		t.Fatal(err)
	}
	if got := proc.PIDs(tree); !reflect.DeepEqual(got, want) {
		t.Fatalf("liveTree: %v, Descendants: %v", got, want)
	}
}
