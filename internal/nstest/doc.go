// Package nstest runs individual tests in private Linux namespaces, so that
// tests can start real daemons (Apache, …) that create System V IPC objects,
// listen on ports and fork orphans without any of it reaching the host.
//
// # Usage
//
//	func TestApacheLeak(t *testing.T) {
//		nstest.RequireBinaries(t, "apache2")
//		if !nstest.InPrivateNamespaces(t) {
//			return // the parent: the test already ran in the child
//		}
//		// From here on this process is PID 1 of private IPC, PID, mount
//		// and network namespaces, with its own /proc and an "up" lo.
//		...
//	}
//
// In the parent test process InPrivateNamespaces re-executes the test binary
// (os.Executable, falling back to os.Args[0]) with
// -test.run=^Top$/^Sub$ (one anchored, quoted expression per level of
// t.Name()), -test.v=true, -test.count=1, -test.short if set, and a
// -test.timeout derived from t.Deadline, in new IPC, PID, mount and network namespaces
// (CLONE_NEWIPC|CLONE_NEWPID|CLONE_NEWNS|CLONE_NEWNET, Pdeathsig SIGKILL).
// The child also gets GORACE=atexit_sleep_ms=0 (unless GORACE already sets
// it), sparing a race-enabled child the race runtime's 1s sleep at exit.
// The parent copies the child's output to t.Log (prefixed "ns| "), then fails the
// test if the child failed, skips it if the child skipped, and returns false.
// The child recognises itself by the SAFE_RESTART_NSTEST environment
// variable (holding t.Name()) and returns true.
//
// # Guarantees
//
//   - The child is PID 1 of a new PID namespace. When it exits, the kernel
//     SIGKILLs every other process of the namespace and the parent's Wait
//     returns only after they are gone: nothing a test starts, daemonized or
//     orphaned, outlives it. If the parent dies, Pdeathsig kills the child and
//     with it the namespace. As a safety net the parent checks, after the
//     child exited, that no process carries the child's unique
//     SAFE_RESTART_NSTEST_TOKEN environment entry (and fails the test and
//     SIGKILLs them if some do).
//   - System V semaphores, shared memory and message queues, and POSIX
//     message queues, belong to the child's IPC namespace and are destroyed
//     with it. The child checks at start that /proc/sysvipc/{sem,shm,msg} are
//     empty and that /proc/self/ns/{ipc,mnt,net,pid} differ from the parent's
//     (as runc's TestIPCPrivate does).
//   - Mount propagation is private (MS_REC|MS_PRIVATE on /). A fresh proc is
//     mounted on /proc (so /proc/self is "1" and /proc lists only the
//     namespace's processes and /proc/sysvipc only its objects), a fresh
//     tmpfs on /dev/shm (POSIX shared memory is a plain tmpfs, not
//     namespaced) and a fresh mqueue on /dev/mqueue when those exist.
//   - The network namespace has only lo, brought up with SIOCSIFFLAGS. Any
//     127.0.0.1 port is free in it; nothing is reachable outside it.
//   - This setup happens in the package's init function of the child, before
//     any test code, so also ancestor tests that only lead to the selected
//     subtest run isolated.
//
// # Zombies
//
// The child is PID 1, so every orphan (for instance a daemon's master after
// its starter exited) is re-parented to it, and nothing reaps them
// automatically: exited processes linger as zombies (state Z in
// /proc/PID/stat). Callers must treat state Z (and X) as exited;
// ipcguard.Proc.Alive and proctest.Proc.Alive do. proctest.Proc.Reap
// collects one zombie that is known not to have been started through
// os/exec. There is deliberately no blanket reaper (wait4(-1)): it would
// steal the exit status of children that some exec.Cmd will Wait for, and
// the kernel does not tell those apart from re-parented orphans.
//
// nstest itself only runs tests in namespaces; the helpers that identify,
// signal and reap processes are in package proctest, which nstest must not
// import (proctest imports ipcguard, whose own tests import nstest).
//
// # Skipping
//
// Tests are skipped with a precise reason when the process is not root or
// clone fails with EPERM, EINVAL, ENOSYS, EUSERS or ENOSPC, and
// RequireBinaries skips when executables are missing (it also searches
// /usr/local/sbin, /usr/sbin and /sbin). With CI=true in the environment
// these fail the test instead.
//
// # Non-goals
//
//   - No user namespace: the child runs as real root, with the host's
//     credentials and capabilities.
//   - No filesystem isolation: the child sees and writes the host's files
//     (t.TempDir is shared with the parent, which is convenient). Only the
//     mount table is private. No UTS, cgroup or time namespace.
//   - No resource limits; a runaway test still uses the host's CPU and memory.
//   - The parent does not forward flags other than -test.run, -test.v,
//     -test.count, -test.short and -test.timeout (no -test.cpu, -test.bench,
//     coverage profiles, …); the child sees the same environment plus the
//     nstest variables.
//   - Not for parallel use of one t across processes: the test body runs
//     only in the child; state in the parent's copy is not updated.
package nstest
