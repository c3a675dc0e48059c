// Package proc is the process mechanics safe-restart's other packages stand
// on: proving a process is the one a pidfile or record names (FromPIDFile,
// ProveMaster: alive, the server's binary, no worker, no younger than its
// file), signalling and waiting through pidfds (SignalProc, WaitExited),
// stop ladders that escalate only on members verified alive (Ladder), a
// process's tree (Descendants, LiveTree), exit statuses and the reaper of
// a supervisor's children (ExitStatus, Reaper), pthread keys in use (PthreadKeysInUse),
// and the shared mechanics: polling under a deadline on an injected clock
// (Retry, Clock; PollUntil), running a
// command that a cancel ends with SIGTERM (Command), EINTR retries
// (RetryEINTR).
//
// Every function that reads processes takes the /proc root to read, so
// tests and the private namespaces of nstest can give their own; an
// option left empty means DefaultRoot (RootOr), the one place "/proc" is
// named for the packages above.
//
// It imports ipcguard and nothing else of this module; everything under
// supervise may import it.
package proc
