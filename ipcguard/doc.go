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
//     service can hold it (DESIGN.md invariant 4). A dead last-operation pid
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
// # Non-goals
//
//   - Another IPC namespace: /proc/sysvipc and semctl act on the caller's.
//     Run inside the container (or setns) to judge a containerised server.
//   - Atomicity: between the re-check and IPC_RMID a process could still
//     start using a set; the window is a few microseconds, and a server only
//     uses sets its own master created, which the proof rules out.
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
