// Package metrics gathers what `safe-restart metrics` exposes (Gather: the
// host's SysV IPC usage against its limits, each service's status, whether
// it serves, and every recorded last operation) and registers it as
// Prometheus gauges (Facts.Register); the command only prints or writes
// them.
//
// It sits on top, beside supervise/doctor: it imports supervise,
// supervise/server, supervise/proc and ipcguard; nothing under supervise
// imports it.
package metrics
