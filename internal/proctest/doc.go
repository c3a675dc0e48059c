// Package proctest finds, identifies, signals and reaps processes for tests
// (on Linux). A process is identified by PID and start time (Proc), never by
// name, so that a recycled PID is never mistaken for it. It reads /proc
// through ipcguard.ReadProc and ipcguard.ReadProcTable, the parsers
// production uses, and signals and waits through pidfds.
//
// It is separate from nstest because ipcguard's own tests run in nstest's
// namespaces: nstest must not import ipcguard, or ipcguard's tests would
// form an import cycle.
//
// # Zombies
//
// Inside nstest's namespaces the test process is PID 1, so every orphan is
// re-parented to it and lingers as a zombie (state Z) until reaped.
// ipcguard.Proc.Alive and Proc.Alive count zombies as exited. Proc.Reap
// collects one zombie that is known not to have been started through
// os/exec. There is deliberately no blanket reaper (wait4(-1)): it would
// steal the exit status of children that some exec.Cmd will Wait for, and
// the kernel does not tell those apart from re-parented orphans.
package proctest
