// Package ipcguard inventories the IPC objects of one IPC namespace, proves
// which of them dead server generations left behind, and removes exactly
// those.
//
// It reads SysV semaphore sets, shared memory segments and message queues
// (/proc/sysvipc/*, plus semctl(2) GETVAL, GETPID, GETNCNT and GETZCNT for
// every semaphore), POSIX objects in /dev/shm with the processes that map
// them or hold an fd on them, the kernel's limits, and the process table.
// It knows nothing of servers beyond a Signature and the live processes
// that run the signature's executable.
//
// # Guarantees
//
//   - Every object gets a Verdict with its proof: the facts checked, in
//     order. Only Orphan objects are removed, and only by a Reaper.
//   - A semaphore set is Orphan only when it matches the signature, nobody
//     waits on it, no semaphore's last-operation pid is a live process that
//     started no later than that operation, and no live process of the
//     service can hold it (README.md invariant 4). A dead last-operation pid
//     proves nothing by itself. A live process of the service with no parent
//     or child of the service (an orphaned worker of a killed master) makes
//     every object unknown. A live master may hold what was created up to
//     Facts.Window before it started, unless a Lineage recorded by
//     safe-restart says exactly what its start created.
//   - Right before removing an object, the Reaper reads it again and skips it
//     if its times, its semaphores' last-operation pids or its waiters
//     changed since the proof. Each outcome is logged once, with its proof.
//   - What cannot be proven either way is Unknown, is kept, and says what
//     would settle it.
//   - Judge and Diff are pure. Take and Inspect read; only Reaper.Reap
//     writes, and not with DryRun.
//
// # Non-goals and limits
//
//   - Another IPC namespace: /proc/sysvipc and semctl act on the caller's.
//     Run inside the container (or setns) to judge a containerised server.
//     From another PID namespace the kernel reports last-operation pids as 0
//     and the holders are invisible: such objects are judged unknown, and
//     POSIX holders in another PID namespace are not seen at all.
//   - Atomicity: between the re-check and IPC_RMID a process could still
//     start using a set; the window is a few microseconds, and a server only
//     uses sets its own master created, which the proof rules out. For
//     /dev/shm objects the window is one scan of every process's maps and
//     fds (tens of milliseconds), taken right before the POSIX removals.
//   - Clock steps: SysV times are wall-clock seconds and process start times
//     are derived from /proc/stat's btime, which moves when the wall clock is
//     stepped. A step forward larger than the lineage window plus 2 s between
//     a master's start and the judgement can make its oldest sets look older
//     than the window. A lineage (exact attribution) is immune.
//   - The lineage window (callers default it to max(10 s, 5x the config
//     test)) bounds how long a start runs before its master detaches; a
//     start that waits longer (a passphrase prompt) needs a wider window.
//   - Message queues are claimed only by a signature that names them, and a
//     queue that holds messages is never an orphan.
//
// # Usage
//
//	sig := ipcguard.ApacheSignature("apache2", 33, "/usr/sbin/apache2")
//	r, err := ipcguard.Inspect(ctx, ipcguard.InspectOptions{Signature: &sig, Window: 10 * time.Second})
//	if err != nil { ... }
//	reaper := ipcguard.Reaper{Log: logger}
//	outcomes, err := reaper.Reap(ctx, r.Orphans())
package ipcguard
