// Package nginxtest starts a real nginx (Debian's /usr/sbin/nginx) for
// tests, from a self-contained configuration rendered into t.TempDir().
//
// It runs only inside nstest's private namespaces (Start fails the test
// elsewhere): its ports are then private, and every process running the
// nginx binary in the PID namespace is this test's, which is how the
// cleanup finds what to kill (nginx rewrites its argv and environment area
// for its process titles, so an environment token, apachetest's way,
// cannot mark its processes).
//
//	func TestSomething(t *testing.T) {
//		nstest.RequireBinaries(t, "nginx")
//		if !nstest.InPrivateNamespaces(t) {
//			return
//		}
//		srv := nginxtest.Start(t, nginxtest.Options{})
//		code, body, err := srv.Get("/") // 200, "nginxtest ok\n"
//		srv.KillMaster9()               // the workers keep serving, orphaned
//		...
//	}
//
// Prepare only renders the configuration, for a test that runs nginx
// itself (`nginx -g 'daemon off;' -c CONF` under safe-restart run).
//
// Start runs `nginx -c CONF`, as production does: the starter daemonizes
// (the master calls setsid) and exits; inside nstest the master is
// re-parented to the test process, PID 1. The configuration reads nothing
// from /etc/nginx: `user www-data` (when root), `worker_processes 2`, the
// pidfile, the error log (level Options.ErrorLogLevel) and every temp path
// in the server's directory, access_log off, and one server listening on a
// free 127.0.0.1 port (and a unix socket with Options.UnixSocket).
//
// # FastCGI front (php-fpm tests)
//
// With Options.FastCGIPass set ("127.0.0.1:9000" or "unix:/run/php.sock"),
// requests for `*.php` (location ~ \.php$) are passed to that FastCGI
// server with the usual parameters and SCRIPT_FILENAME set to the document
// root (Options.Root) followed by the script's path: GET /info.php runs
// Root/info.php. Other paths are served from Root as static files, and an
// index.php in Root answers GET /. Options.Root must be readable by
// www-data; Start creates the default root, Dir/html, with index.html.
//
// # Facts (nginx 1.22.1 on Debian 12, in private namespaces)
//
//   - The master runs as root in its own session (sid = its pid); the
//     workers run as www-data in that session.
//   - KillMaster9: the workers are re-parented to PID 1, keep serving and
//     keep the listeners; they exit on TERM. A start then fails with
//     `[emerg] bind() ... failed (98: Address already in use)` (five tries,
//     then `still could not bind()`), and so does one after the orphans
//     are gone while a unix socket file of a listen directive remains:
//     nginx unlinks it only on a clean exit.
//   - HUP with a bad configuration: the master logs `[emerg]` (pid = the
//     master's) and keeps its old workers and configuration; `nginx -t`
//     does not bind, so a listen address another process holds passes the
//     test and is rejected only by the HUP.
package nginxtest
