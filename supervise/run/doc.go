// Package run supervises a server in the foreground (safe-restart run):
// Foreground runs the child in its own process group, its exit status
// collected by a reaper that also reaps re-parented zombies (as PID 1, or
// as a subreaper), the stop ladder on TERM, verified reloads and recycles
// through the profile, crash restarts with exponential backoff after the
// dead generation's orphans and IPC are cleared; nginx and php-fpm restart
// on the listening sockets held since the last verified start or reload
// (runHandoff, on a sock.HeldSet), so no connection is refused in between.
// HealthWatch and MemoryWatch (total PSS of the tree; a steady growth is a
// least-squares line with R² >= 0.8, growth.GrowsSteadily) ask it to act
// through Do. The caller builds the oklog/run group
// (cmd/safe-restart/run.go).
//
// It composes the operations' own steps (supervise's StartOptions and
// ReloadOptions) and sits beside supervise/doctor, above supervise;
// nothing under supervise imports it.
package run
