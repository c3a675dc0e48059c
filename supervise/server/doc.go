// Package server is safe-restart's knowledge of each kind of server,
// behind one interface, Driver (kind.go), in the manner of
// database/sql/driver: what every kind must answer (its config test and
// run configuration, its start command, stop ladder, reload signal, IPC
// signature, fatal log lines, how a reload shows in its log), and
// optional capabilities the operations find by type assertion: Overlapper
// (a new master can start beside the old one on SO_REUSEPORT), Inheritor
// (it can take listening sockets as inherited fds), Upgrader (nginx's own
// binary upgrade), AcceptProber, StatusCounter, Trialer, Lingerer,
// ConfReporter, ClosesEarly, ChildrenProver.
//
// The drivers are Apache (apache*.go), nginx (nginx*.go), php-fpm
// (phpfpm*.go) and any daemon a TOML service file describes
// (servicefile.go, servicekind.go). Profile names a server (its binary,
// default config, systemd unit) and holds its Driver; LookupProfile,
// ResolveService and Installed find them.
//
// Profile.Kind is the family's name ("apache", "nginx", "php-fpm",
// "service"); Profile.Driver is the implementation.
//
// It imports supervise/sock, supervise/proc and ipcguard; the operations
// (supervise) and everything above import it.
package server
