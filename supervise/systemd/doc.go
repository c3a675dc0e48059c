// Package systemd is what safe-restart knows of a systemd host: the unit a
// server runs under, as systemctl shows it (Unit, FindUnit, UnitOf), its
// start and restart jobs (Unit.RunJob), whether a master is its main
// process and its processes are all in its cgroup (Unit.IsMain,
// Unit.ModelError), a graceful stop queued before the ladder's later steps
// (Unit.BeforeStep), a stop systemd has finished (Unit.SettleStopped), the
// PID file drop-in of an overlap in the unit (Unit.SetPIDFile), and the
// drop-in that routes `systemctl reload` through safe-restart
// (InstallDropIn).
//
// It imports supervise/server, supervise/proc, ipcguard and
// internal/atomicfile; the operations (supervise) import it.
package systemd
