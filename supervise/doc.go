// Package supervise acts on servers: verified start, stop, restart and
// reload, status, and the foreground supervisor of `safe-restart run`.
//
// It stands on layers that only import downward (ARCHITECTURE.md beside this file):
// supervise/server knows each kind of server behind one interface, Driver
// (Apache, nginx, php-fpm, and any daemon a TOML service file describes);
// supervise/sock knows sockets (listeners, sock_diag, held sockets);
// supervise/proc knows processes (pidfile proofs, pidfd signals and waits,
// ladders, trees, polling, commands). supervise/growth keeps samples for
// doctor. supervise/doctor and supervise/metrics sit on top of this
// package. What differs between kinds is the driver; the rest is shared
// here, so every kind gets the same guarantees:
//
//   - the run configuration comes from the server's own config test
//     (apache2 -t, then -t -D DUMP_RUN_CFG; nginx -T; php-fpm -tt), so includes and
//     defaults resolve exactly as the server resolves them; a failing test
//     refuses before anything is touched;
//   - a master is signalled only after the pidfile's process is proven the
//     server's (alive, its binary, no younger than the file), through a pidfd;
//   - a ladder escalates only on members verified alive;
//   - a start clears what killed generations left (orphaned workers holding
//     the listeners, IPC objects with proofs, stale sockets) and is verified:
//     a live master, every listener accepting, the health check, no fatal line;
//   - a reload is verified (the master, or the one a re-executing server's
//     pidfile names now; its new generation in the log; new children; the
//     health check) and a server it left down is started again, verified;
//   - before a reload or restart touches a running master, the new
//     configuration is proven to run (supervise/trial): Apache is started in a
//     trial in throwaway namespaces (every mount read-only,
//     overlays on the directories it writes, its own network, IPC and
//     PID namespaces, all gone with its init), and every new listen address
//     is bound here once; a failure refuses with the server's own lines.
//
// It uses ipcguard; ipcguard never uses it.
//
// Foreground (safe-restart run) supervises a server in the foreground: the
// child in its own process group, its exit status collected by a reaper
// that also reaps re-parented zombies (as PID 1, or as a subreaper), the
// stop ladder on TERM, verified reloads and recycles through the profile,
// crash restarts with exponential backoff after the dead generation's
// orphans and IPC are cleared; nginx and php-fpm restart on the listening
// sockets held since the last verified start or reload (runHandoff), so no
// connection is refused in between. HealthWatch and MemoryWatch (total PSS of
// the tree; a steady growth is a least-squares line with R² >= 0.8) ask it
// to act through Do. The caller builds the oklog/run group
// (cmd/safe-restart/run.go).
//
// Usage:
//
//	p, err := server.LookupProfile("nginx")
//	rep, err := supervise.Reload(ctx, supervise.ReloadOptions{
//		Start: supervise.StartOptions{Profile: p, Log: log},
//		Stop:  supervise.StopOptions{Ladder: p.Ladder(server.DefaultGracefulWait)},
//	})
package supervise
