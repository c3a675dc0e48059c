// Package apachetest starts a real Apache httpd (Debian's apache2) for
// tests, from a self-contained configuration rendered into t.TempDir().
//
// It is meant to run inside nstest's private namespaces, where the
// semaphore sets Apache creates (with Config.SysvSem), its ports and any
// process it leaves behind die with the test:
//
//	func TestSomething(t *testing.T) {
//		nstest.RequireBinaries(t, "apache2")
//		if !nstest.InPrivateNamespaces(t) {
//			return
//		}
//		srv := apachetest.Start(t, apachetest.Config{MPM: "prefork", SysvSem: true, SSL: true})
//		snap, _ := ipcguard.Take(ctx, ipcguard.Source{}) // snap.Sem: the sets
//		srv.KillGroup9() // the sets stay behind: Apache could not clean up
//		...
//	}
//
// Start runs `apache2 -f CONF -k start`, exactly as production does: the
// starter exits after forking the master, which detaches (and, inside nstest,
// is re-parented to the test process, PID 1). Every process of a Server
// carries a unique APACHETEST_TOKEN environment entry; together with PID and
// start time (proctest.Proc) that is how the package finds and kills its
// processes. It never identifies processes by name.
//
// Outside a private PID namespace the master is re-parented to the host's
// init (or a subreaper) and the package still works, but it then uses the
// host's ports and IPC namespace, and a test binary that is SIGKILLed leaves
// Apache running; use nstest.
//
// The configuration uses nothing from /etc/apache2: modules are loaded from
// ModDir, mod_unixd, mod_log_config, mod_so, mod_watchdog and mod_version are
// compiled into Debian's binary, and no APACHE_* environment variables are
// needed (Env).
//
// # Semaphore facts (Apache 2.4.71 on Debian, observed in private namespaces)
//
// With Config{SysvSem: true, AuthDigest: true, SSL: true}, right after Start:
//
//   - prefork (2 plain listeners): 3 sets, each nsems=1, perms 0600, uid/gid
//     33 (www-data, set with IPC_SET), cuid/cgid 0. In creation order: the
//     ssl-cache mutex, created by the starter in the first configuration
//     pass (mod_ssl allocates it from the process pool, so it survives the
//     pass and restarts; GETPID is the exited starter until a TLS handshake
//     locks it); the mpm-accept mutex, created by the master (children
//     block on it: GETPID a child, ncnt = idle children); the
//     authdigest-client mutex, created by the master (GETPID the master,
//     otime 0 until used). The starter also creates and removes (IPC_RMID)
//     a first accept mutex in pass one, which is why semids start at 1.
//   - event (and no accept mutex): 2 sets, ssl-cache (starter) and
//     authdigest-client (master). worker: 3 sets (count only, not broken
//     down).
//   - ctime of all of them falls in the master's start second: ctime has
//     whole-second resolution, so only GETPID (or the semid order)
//     attributes a set to the starter.
//   - KillMaster9: the children keep serving (HTTP and TLS), are re-parented
//     to PID 1 and do not exit on their own; the sets remain.
//   - KillGroup9: every set remains (leaked).
//   - `-k stop`: all sets are removed, the starter's too.
//   - `-k graceful` / `-k restart`: the master removes and re-creates the
//     sets of the configuration pool (accept, authdigest); the ssl-cache set
//     keeps its semid.
package apachetest
