// Package supervise acts on servers: verified start, stop, restart and
// reload, and status.
//
// It stands on layers that only import downward (ARCHITECTURE.md beside this file):
// supervise/server knows each kind of server behind one interface, Driver
// (Apache, nginx, php-fpm, and any daemon a TOML service file describes);
// supervise/sock knows sockets (listeners, sock_diag, held sockets);
// supervise/proc knows processes (pidfile proofs, pidfd signals and waits,
// ladders, trees, polling, commands); supervise/verify, supervise/trial and
// supervise/systemd prove a generation serves, prove a configuration runs
// and keep systemd's model true; supervise/growth keeps samples for
// doctor. supervise/run, supervise/doctor and supervise/metrics sit on top
// of this package. What differs between kinds is the driver; the rest is shared
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
// The steps a start and a reload are made of (StartOptions.ClearGround,
// Verify, RecordLineage and ProveRuns; ReloadOptions.UnsafeReload and
// ReloadVerified; StopAll) are exported for supervise/run, which composes
// them for a server it supervises in the foreground (safe-restart run).
//
// Usage:
//
//	p, err := server.LookupProfile("nginx")
//	rep, err := supervise.Reload(ctx, supervise.ReloadOptions{
//		Start: supervise.StartOptions{Profile: p, Log: log},
//		Stop:  supervise.StopOptions{Ladder: p.Ladder(server.DefaultGracefulWait)},
//	})
package supervise
