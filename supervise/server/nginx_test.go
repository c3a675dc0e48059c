package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/safe-restart/safe-restart/internal/nstest"
	"github.com/safe-restart/safe-restart/ipcguard"
)

func readTestdata(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "nginx", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestNginxRunConfigDebian reads the real `nginx -T` dump of Debian 12's
// stock /etc/nginx/nginx.conf and its `nginx -V`.
func TestNginxRunConfigDebian(t *testing.T) {
	rc, err := nginxRunConfig(readTestdata(t, "debian.dump"), readTestdata(t, "debian.V"), 0)
	if err != nil {
		t.Fatal(err)
	}
	want := RunConfig{
		ServerRoot: "/usr/share/nginx",
		PidFile:    "/run/nginx.pid",
		ErrorLog:   "/var/log/nginx/error.log",
		User:       Account{Name: "www-data", ID: 33},
		Group:      Account{Name: "www-data", ID: 33},
		Listen:     []string{"80", "[::]:80"},
		Files: []string{"/etc/nginx/nginx.conf", "/etc/nginx/modules-enabled/50-mod-http-echo.conf",
			"/etc/nginx/mime.types", "/etc/nginx/sites-enabled/default"},
	}
	if !reflect.DeepEqual(rc, want) {
		t.Errorf("run config\n got %+v\nwant %+v", rc, want)
	}
}

func TestParseBuild(t *testing.T) {
	b, err := parseBuild(readTestdata(t, "debian.V"))
	if err != nil {
		t.Fatal(err)
	}
	if b.Version != "nginx/1.22.1" || b.Prefix != "/usr/share/nginx" || b.PidPath != "/run/nginx.pid" || b.ErrorLog != "stderr" ||
		b.Options["with-cc-opt"] != "-g -O2 -ffile-prefix-map=/build/reproducible-path/nginx-1.22.1=. -fstack-protector-strong -Wformat -Werror=format-security -fPIC -Wdate-time -D_FORTIFY_SOURCE=2" {
		t.Errorf("build %+v", b)
	}
	// Without configure arguments: nginx's own defaults.
	b, err = parseBuild("nginx version: nginx/1.25.0\nbuilt by gcc 12\n")
	if err != nil || b.Prefix != "/usr/local/nginx" || b.PidPath != "logs/nginx.pid" || b.ErrorLog != "logs/error.log" {
		t.Errorf("defaults: %+v, %v", b, err)
	}
	for _, bad := range []string{"", "nginx: invalid option: \"V\"", "nginx version: x\nconfigure arguments: --with-cc-opt='-g"} {
		if _, err := parseBuild(bad); !errors.Is(err, ErrNginxConf) {
			t.Errorf("parseBuild(%q) = %v, want ErrNginxConf", bad, err)
		}
	}
}

// dump builds a `nginx -T` output from path, text pairs.
func dump(pairs ...string) string {
	var b strings.Builder
	for i := 0; i < len(pairs); i += 2 {
		b.WriteString(dumpHeader + pairs[i] + ":\n" + pairs[i+1] + "\n")
	}
	return b.String()
}

const build = "nginx version: nginx/1.22.1\nconfigure arguments: --prefix=/srv/ngx --user=www-data --group=www-data\n"

func TestNginxRunConfig(t *testing.T) {
	tests := []struct {
		name, dump string
		euid       int
		want       RunConfig
	}{{
		name: "defaults relative to the prefix",
		dump: dump("/etc/ngx/nginx.conf", "events {}\nhttp { server { listen 8080; } }"),
		want: RunConfig{ServerRoot: "/srv/ngx", PidFile: "/srv/ngx/logs/nginx.pid", ErrorLog: "/srv/ngx/logs/error.log",
			User: Account{"www-data", 33}, Group: Account{"www-data", 33}, Listen: []string{"8080"},
			Files: []string{"/etc/ngx/nginx.conf"}},
	}, {
		name: "certificates and keys, relative to the main file's directory; a variable or inline one names no file",
		dump: dump("/etc/ngx/nginx.conf", `http { server {
	listen 443 ssl;
	ssl_certificate     tls/a.pem;
	ssl_certificate_key /etc/keys/a.key;
	ssl_certificate     "/etc/certs/$ssl_server_name.pem";
	ssl_certificate_key data:$variable;
} }
include more.conf;`, "/etc/ngx/more.conf", "http { server { ssl_certificate /etc/ngx/tls/a.pem; ssl_certificate_key 'b.key'; } }"),
		want: RunConfig{ServerRoot: "/srv/ngx", PidFile: "/srv/ngx/logs/nginx.pid", ErrorLog: "/srv/ngx/logs/error.log",
			User: Account{"www-data", 33}, Group: Account{"www-data", 33}, Listen: []string{"443"},
			Files:    []string{"/etc/ngx/nginx.conf", "/etc/ngx/more.conf"},
			TLSFiles: []string{"/etc/ngx/tls/a.pem", "/etc/keys/a.key", "/etc/ngx/b.key"}},
	}, {
		name: "comments, quotes, blocks and a main-context include",
		dump: dump("/etc/ngx/nginx.conf", `# pid /wrong.pid;
user "nobody" 'nogroup' ; # user root;
include main.d/*.conf;
events { worker_connections 10; }
http {
	error_log /wrong/http.log;     # not the main context
	server { listen "unix:/run/a b.sock" default_server; location /x { return 200 "pid /x; {"; } }
}
error_log stderr;
error_log logs/main.log notice;
error_log /second.log;`,
			"/etc/ngx/main.d/b.conf", "pid run/b.pid;",
			"/etc/ngx/main.d/a.conf", "pid run/a.pid;\nworker_processes 2;",
			"/etc/ngx/other/c.conf", "pid /not-included.pid;"),
		want: RunConfig{ServerRoot: "/srv/ngx", PidFile: "/srv/ngx/run/b.pid", ErrorLog: "/srv/ngx/logs/main.log",
			User: Account{"nobody", 65534}, Group: Account{"nogroup", 65534}, Listen: []string{"/run/a b.sock"},
			Files: []string{"/etc/ngx/nginx.conf", "/etc/ngx/main.d/b.conf", "/etc/ngx/main.d/a.conf", "/etc/ngx/other/c.conf"}},
	}, {
		name: "not root: the user directive does not apply",
		dump: dump("/c/nginx.conf", "user www-data;\npid /p;\nerror_log syslog:server=unix:/dev/log;"),
		euid: 65534,
		want: RunConfig{ServerRoot: "/srv/ngx", PidFile: "/p", ErrorLog: "syslog:server=unix:/dev/log",
			User: Account{"nobody", 65534}, Group: Account{"nogroup", 65534}, Files: []string{"/c/nginx.conf"}},
	}, {
		name: "an error log that is not a file",
		dump: dump("/c/nginx.conf", "error_log stderr info;\nerror_log memory:1m;"),
		want: RunConfig{ServerRoot: "/srv/ngx", PidFile: "/srv/ngx/logs/nginx.pid",
			User: Account{"www-data", 33}, Group: Account{"www-data", 33}, Files: []string{"/c/nginx.conf"},
			Warnings: []string{`the master's error log is "stderr", not a file: set error_log in the main context (a reload is then judged by its new workers and the health check alone)`}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc, err := nginxRunConfig(tt.dump, build, tt.euid)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(rc, tt.want) {
				t.Errorf("\n got %+v\nwant %+v", rc, tt.want)
			}
		})
	}
}

func TestNginxRunConfigErrors(t *testing.T) {
	tests := []struct{ name, dump, want string }{
		{"empty", "", "printed no configuration file"},
		{"text before a file", "nginx: [emerg] x\n" + dump("/c", "pid /p;"), "before any"},
		{"unterminated directive", dump("/c", "pid /p"), `directive "pid" is not terminated`},
		{"unclosed block", dump("/c", "events {"), `block "events" is not closed`},
		{"stray brace", dump("/c", "}"), `line 1: unexpected "}"`},
		{"unterminated quote", dump("/c", `pid "/p;`), "unterminated \" quote"},
		{"include loop", dump("/c/nginx.conf", "include a.conf;", "/c/a.conf", "include a.conf;"), "include [a.conf]"},
		{"daemon off", dump("/c", "daemon off;"), `/c line 1 says "daemon off"`},
		{"master_process off", dump("/c", "events {}\nmaster_process off;"), `/c line 2 says "master_process off"`},
		{"unknown user", dump("/c", "user no-such-user-xyz;"), `nginx user "no-such-user-xyz"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc, err := nginxRunConfig(tt.dump, build, 0)
			if err == nil {
				err = rc.refuseForeground()
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
	rc, err := nginxRunConfig(dump("/c", "daemon off;"), build, 0)
	if err != nil || rc.Foreground != `/c line 1 says "daemon off"` || !errors.Is(rc.refuseForeground(), ErrUnsupportedConfig) {
		t.Errorf("daemon off: %v, Foreground %q, refusal %v; want ErrUnsupportedConfig for the daemonizing commands", err, rc.Foreground, rc.refuseForeground())
	}
}

func TestNginxFatal(t *testing.T) {
	k := nginxKind{}
	// A bind that fails with EADDRINUSE is tried again: only the last line
	// is final.
	if got := k.fatalLinesOf(readTestdata(t, "start-bind-in-use.stderr")); !reflect.DeepEqual(got, []string{"nginx: [emerg] still could not bind()"}) {
		t.Errorf("fatal lines of a start beside the orphans: %q", got)
	}
	if got := k.fatalLinesOf(readTestdata(t, "hup-bind-in-use.log")); len(got) != 1 || !strings.HasSuffix(got[0], "still could not bind()") {
		t.Errorf("fatal lines of a HUP with a port in use: %q", got)
	}
	fatal := []string{
		`nginx: [emerg] bind() to 127.0.0.1:80 failed (13: Permission denied)`,
		`2026/11/29 04:02:13 [emerg] 4#4: unknown directive "bogus_directive" in /tmp/ngx-exp/nginx.conf:16`,
		`2026/11/29 04:02:13 [alert] 4#4: worker process 9 exited with fatal code 2 and cannot be respawned`,
	}
	notFatal := []string{
		`2026/11/29 04:02:14 [notice] 4#4: reconfiguring`,
		`2026/11/29 04:02:14 [alert] 4#4: worker process 16 exited on signal 11`,
		`2026/11/29 04:02:14 [error] 5#5: *3 open() "/x/[emerg] 1#1: y" failed (2: No such file or directory), client: 127.0.0.1, request: "GET /[emerg] HTTP/1.1"`,
		`nginx: [warn] the "user" directive makes sense only if the master process runs with super-user privileges`,
	}
	for _, l := range fatal {
		if !k.Fatal(l) {
			t.Errorf("not fatal: %q", l)
		}
	}
	for _, l := range notFatal {
		if k.Fatal(l) {
			t.Errorf("fatal: %q", l)
		}
	}
}

// TestNginxReloaded reads logs a real nginx 1.22.1 wrote after a HUP.
func (k nginxKind) fatalLinesOf(text string) []string {
	return Profile{Driver: k}.FatalLines(text)
}

func TestNginxReloaded(t *testing.T) {
	k := nginxKind{}
	tests := []struct {
		log      string
		master   int
		pid      int
		rejected string
	}{
		{readTestdata(t, "hup-ok.log"), 4, 4, ""},
		{"", 4, 4, ""}, // nginx's default level logs nothing on success
		{readTestdata(t, "hup-bad-directive.log"), 4, 0, `unknown directive "bogus_directive"`},
		{readTestdata(t, "hup-bad-directive.log"), 3, 3, ""}, // another process's emerg
		{readTestdata(t, "hup-bind-in-use.log"), 6, 0, "bind() to 127.0.0.1:18082 failed (98: Address already in use) ... still could not bind()"},
		// While nginx tries to bind again, no verdict yet.
		{strings.Join(strings.Split(readTestdata(t, "hup-bind-in-use.log"), "\n")[:6], "\n"), 6, 0, ""},
		{"2026/11/29 04:02:55 [emerg] 6#6: bind() to 127.0.0.1:80 failed (13: Permission denied)", 6, 0, "Permission denied"},
	}
	for i, tt := range tests {
		pid, err := k.Reloaded(tt.log, ipcguard.Proc{PID: tt.master})
		switch {
		case tt.rejected == "" && err != nil, pid != tt.pid:
			t.Errorf("%d: reloaded = %d, %v; want %d", i, pid, err, tt.pid)
		case tt.rejected != "" && (!errors.Is(err, ErrReloadRejected) || !strings.Contains(err.Error(), tt.rejected)):
			t.Errorf("%d: reloaded error %v, want ErrReloadRejected with %q", i, err, tt.rejected)
		}
	}
}

func TestNginxReloadsLogged(t *testing.T) {
	k := nginxKind{}
	log := readTestdata(t, "hup-bad-directive.log") + readTestdata(t, "hup-ok.log")
	if n := k.ReloadsLogged(log, ipcguard.Proc{PID: 4}); n != 2 {
		t.Errorf("master 4: %d reloads, want 2", n)
	}
	if n := k.ReloadsLogged(log, ipcguard.Proc{PID: 40}); n != -1 {
		t.Errorf("master 40 (no notice): %d, want -1", n)
	}
	if n := k.ReloadsLogged(readTestdata(t, "hup-bind-in-use.log"), ipcguard.Proc{PID: 6}); n != 1 {
		t.Errorf("master 6: %d, want 1", n)
	}
}

func TestNginxLadder(t *testing.T) {
	if got := fmt.Sprint(NginxLadder(0)); got != "[SIGTERM to master, wait 10s SIGKILL to all, wait 5s]" {
		t.Errorf("NginxLadder(0) = %s", got)
	}
	if l := NginxLadder(DefaultGracefulWait); len(l) != 3 || l[0].Signal != 3 || l[0].Wait != DefaultGracefulWait {
		t.Errorf("NginxLadder(30s) = %v", l)
	}
}

// TestReadRunConfigNginx asks the real nginx about a config written to a
// temporary directory; a bad one is a ConfigTestError naming the problem.
func TestReadRunConfigNginx(t *testing.T) {
	nstest.RequireBinaries(t, "nginx")
	p, err := LookupProfile("nginx")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "nginx.conf")
	text := "user www-data;\npid " + dir + "/nginx.pid;\nerror_log " + dir + "/error.log;\nevents {}\n" +
		"http { client_body_temp_path " + dir + "; proxy_temp_path " + dir + "; fastcgi_temp_path " + dir + "; uwsgi_temp_path " + dir +
		"; scgi_temp_path " + dir + "; access_log off; server { listen 127.0.0.1:1; listen unix:" + dir + "/s.sock; } }\n"
	writeFile(t, conf, text)
	rc, err := ReadRunConfig(context.Background(), p, conf)
	if err != nil {
		t.Fatal(err)
	}
	if rc.User.ID != 33 || rc.PidFile != dir+"/nginx.pid" || rc.ErrorLog != dir+"/error.log" || rc.ServerRoot != "/usr/share/nginx" ||
		!reflect.DeepEqual(rc.Listen, []string{"127.0.0.1:1", dir + "/s.sock"}) || rc.Elapsed <= 0 {
		t.Errorf("run config %+v", rc)
	}
	writeFile(t, conf, text+"bogus_directive on;\n")
	_, err = ReadRunConfig(context.Background(), p, conf)
	var cte *ConfigTestError
	if !errors.As(err, &cte) || !strings.Contains(cte.Output, `unknown directive "bogus_directive"`) {
		t.Fatalf("bad config: %v", err)
	}
}

// TestClearTestPidfile: the empty pidfile nginx -t creates is removed
// (silently when this test made it, with a warning when it is old); a
// pidfile with a pid, or an empty one a master may be writing, stays.
func TestClearTestPidfile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "nginx.pid")
	began := time.Now()
	writeFile(t, path, "")
	if w, err := clearTestPidfile("/proc", path, "/nonexistent/nginx", began); w != "" || err != nil || exists(path) {
		t.Errorf("ours: %q, %v, exists %v", w, err, exists(path))
	}
	writeFile(t, path, "")
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	if w, err := clearTestPidfile("/proc", path, "/nonexistent/nginx", began); !strings.Contains(w, "an earlier config test left") || err != nil || exists(path) {
		t.Errorf("old: %q, %v, exists %v", w, err, exists(path))
	}
	writeFile(t, path, "")
	if w, err := clearTestPidfile("/proc", path, "/nonexistent/nginx", time.Now().Add(time.Hour)); w != "" || err != nil || !exists(path) {
		t.Errorf("recent, not ours: %q, %v, exists %v", w, err, exists(path))
	}
	writeFile(t, path, "123\n")
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	if w, err := clearTestPidfile("/proc", path, "/nonexistent/nginx", began); w != "" || err != nil || !exists(path) {
		t.Errorf("with a pid: %q, %v, exists %v", w, err, exists(path))
	}
	// An empty file while a process of the server started around it: a
	// master may be writing its pid. (This test binary plays the server.)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	me, err := ipcguard.ReadProc("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, "")
	if err := os.Chtimes(path, me.Start, me.Start); err != nil {
		t.Fatal(err)
	}
	if w, err := clearTestPidfile("/proc", path, self, me.Start); w != "" || err != nil || !exists(path) {
		t.Errorf("a server process started around it: %q, %v, exists %v", w, err, exists(path))
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// FuzzNginxRunConfig: no dump makes the reader panic or loop.
func FuzzNginxRunConfig(f *testing.F) {
	f.Add(readTestdata(f, "debian.dump"))
	f.Add(dump("/c/nginx.conf", "include a.conf;\nuser 'x' \"y\";", "/c/a.conf", "pid p; # c\nhttp { listen unix:/s; }"))
	f.Add(dump("/c", `a "b\"c" 'd\'e' \; {}`))
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = nginxRunConfig(s, build, 0)
		_, _ = parseBuild(s)
	})
}
