package ipcguard

import "time"

// Proc is a process identity as ipcguard needs it: who it is (pid, start
// time, exe) and whether it is still alive.
type Proc struct {
	PID  int `json:"pid"`
	PPID int `json:"ppid"`
	// Session is /proc/PID/stat field 6, the session id: Apache's master
	// calls setsid, so its workers' session is the master's pid, and stays
	// so after the master dies.
	Session int    `json:"session"`
	State   byte   `json:"state"` // /proc/PID/stat field 3; 'Z' (zombie) and 'X' (dead) have exited
	Comm    string `json:"comm"`  // /proc/PID/stat field 2, without the parentheses
	// StartTicks is /proc/PID/stat field 22: start time in clock ticks
	// (USER_HZ, 100 on Linux) after boot. (PID, StartTicks) names a process
	// across pid reuse.
	StartTicks uint64    `json:"start_ticks"`
	Start      time.Time `json:"start"`   // boot time + StartTicks; accurate to about 1 s
	UID        uint32    `json:"uid"`     // real uid (/proc/PID/status Uid, first field)
	Threads    int       `json:"threads"` // /proc/PID/status Threads: live threads of the group
	Exe        string    `json:"exe"`     // readlink /proc/PID/exe; "" when unreadable
}

// Alive reports whether the process has not exited: a zombie has, unless
// it is a thread-group leader that exited before its other threads, which
// still run (and may hold a semaphore).
func (p Proc) Alive() bool { return (p.State != 'Z' && p.State != 'X') || p.Threads > 1 }

// ProcKey identifies a process across pid reuse.
type ProcKey struct {
	PID        int    `json:"pid"`
	StartTicks uint64 `json:"start_ticks"`
}

// Key returns the identity of p.
func (p Proc) Key() ProcKey { return ProcKey{PID: p.PID, StartTicks: p.StartTicks} }

// ProcTable is one scan of /proc: every process by pid.
type ProcTable struct {
	Taken time.Time    `json:"taken"`
	Boot  time.Time    `json:"boot"` // /proc/stat btime
	ByPID map[int]Proc `json:"procs"`
}

// Live returns the live (non-zombie) process with that pid, if any.
func (t ProcTable) Live(pid int) (Proc, bool) {
	p, ok := t.ByPID[pid]
	if !ok || !p.Alive() {
		return Proc{}, false
	}
	return p, true
}
