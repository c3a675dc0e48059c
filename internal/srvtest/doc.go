// Package srvtest holds what the server test harnesses (apachetest,
// nginxtest, fpmtest) and the CLI tests share, so that each is written
// once: free 127.0.0.1 ports, a plain HTTP GET, reading a pidfile and a
// log, a temporary directory the servers' unprivileged workers can read,
// SIGKILLing a master and the kill-and-reap cleanup of every process of a
// server. It is for tests only.
//
// The helpers that signal processes (KillMaster9, KillAll) act on the
// processes they are given, by pidfd (internal/proctest); inside nstest's
// namespaces every one of them is the test's own.
package srvtest
