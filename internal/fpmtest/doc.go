// Package fpmtest starts a real php-fpm8.2 for tests, inside nstest's
// private namespaces, and talks FastCGI to it.
//
// Start renders a self-contained php-fpm.conf into t.TempDir(): [global]
// with pid, error_log, daemonize = yes and process_control_timeout; one
// pool www (user www-data) listening on a free 127.0.0.1 port or a unix
// socket, pm static (or dynamic) with 2 workers; a document root with
// index.php and slow.php (?ms=N sleeps N ms). It runs `php-fpm8.2 -y CONF`
// and waits until the pidfile names a live master and /index.php answers
// over FastCGI.
//
// Facts checked on php-fpm 8.2.36 (Debian) that the tests rely on:
//   - USR2 re-executes the master (execvp of its argv, sockets inherited
//     through FPM_SOCKETS); a daemonized one forks again, so the pidfile
//     names a new pid. It logs "Reloading in progress ...", "using
//     inherited socket fd=N", "fpm is running, pid N" and "ready to handle
//     connections".
//   - A re-exec with a broken config dies: "FPM initialization failed",
//     the pidfile left behind naming the dead pid.
//   - kill -9 of the master leaves the workers running (www-data,
//     re-parented, session id = the dead master's pid) holding the socket:
//     a plain start then fails with "Another FPM instance seems to already
//     listen on PATH" (unix) or "unable to bind listening socket for
//     address" (TCP). Once they are gone, php-fpm itself unlinks a socket
//     file nothing answers on before binding.
//
// Guarantees: nothing outlives the test (the cleanup SIGKILLs every
// php-fpm8.2 process of the namespace, and the namespace dies with the
// test). Non-goals: no nginx (FastCGIGet is the client), no TLS.
package fpmtest
