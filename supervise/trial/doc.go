// Package trial proves, before a reload or restart touches a running
// master, that a new configuration can run (README.md invariant 5;
// Options.ProveRuns): the server is started in throwaway namespaces
// (private mount, PID, network, IPC and UTS; every directory it writes an
// overlay on a tmpfs, the rest read-only), until its master has started and
// every listener accepts; then every address the trial listened on that the
// running master does not hold is bound once here (the bind check). A
// configuration that cannot run is an *Error quoting the server's own
// lines; an address another process holds, ErrCannotBind. Nothing of the
// running server is touched either way.
//
// The trial's init is safe-restart itself, re-executed in the new
// namespaces (this package's init function takes over when it finds its
// spec on fd 3 as PID 1).
//
// It imports supervise/verify, supervise/server, supervise/sock,
// supervise/proc and ipcguard; the operations (supervise) import it.
package trial
