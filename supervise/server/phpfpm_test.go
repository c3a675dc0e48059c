package server

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/ipcguard"
)

func readFixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "php-fpm", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestFPMRunConfig parses real `php-fpm8.2 -tt` dumps (testdata/php-fpm,
// written by php-fpm 8.2.36 to stderr).
func TestFPMRunConfig(t *testing.T) {
	tests := []struct {
		file     string
		pid, log string
		user     string
		listen   []string
		warn     []string // substrings, one per warning
		err      error
	}{
		{file: "debian.txt", pid: "/run/php/php8.2-fpm.pid", log: "/var/log/php8.2-fpm.log", user: "www-data",
			listen: []string{"/run/php/php8.2-fpm.sock"}, warn: []string{"process_control_timeout = 0"}},
		{file: "two-pools.txt", pid: "/tmp/fpmx/p.pid", log: "/tmp/fpmx/e.log", user: "www-data",
			listen: []string{"/tmp/fpmx/a.sock", "[::1]:9112"}, warn: []string{"process_control_timeout = 0"}},
		{file: "syslog.txt", pid: "/tmp/fpmx/fpm.pid", log: "syslog", user: "www-data", listen: []string{"127.0.0.1:9111"}},
		{file: "daemonize-no.txt", pid: "/tmp/fpmx/p.pid", log: "/tmp/fpmx/e.log", user: "www-data",
			listen: []string{"/tmp/fpmx/a.sock"}, warn: []string{"daemonize = no"}},
		{file: "no-pid.txt", err: ErrNoPidFile},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			d, ok := parseFPMDump(readFixture(t, tt.file))
			if !ok {
				t.Fatal("no dump found")
			}
			rc, err := d.runConfig()
			if !errors.Is(err, tt.err) {
				t.Fatalf("error %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if rc.PidFile != tt.pid || rc.ErrorLog != tt.log || rc.User.Name != tt.user || rc.User.ID != 33 || rc.Group.ID != 33 && rc.Group.Name != "" {
				t.Errorf("got pid %q log %q user %+v group %+v", rc.PidFile, rc.ErrorLog, rc.User, rc.Group)
			}
			if !reflect.DeepEqual(rc.Listen, tt.listen) {
				t.Errorf("listen %q, want %q", rc.Listen, tt.listen)
			}
			if len(rc.Warnings) != len(tt.warn) {
				t.Fatalf("warnings %q, want %q", rc.Warnings, tt.warn)
			}
			for i, w := range tt.warn {
				if !strings.Contains(rc.Warnings[i], w) {
					t.Errorf("warning %q, want it to name %q", rc.Warnings[i], w)
				}
			}
		})
	}
}

// TestFindFPM: the names of a php-fpm service, and an ambiguous php-fpm.
func TestFindFPM(t *testing.T) {
	dir := t.TempDir()
	defer func(old string) { fpmSbin = old }(fpmSbin)
	fpmSbin = dir
	touch := func(name string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct{ name, bin, conf string }{
		{"php8.2-fpm", "php-fpm8.2", "/etc/php/8.2/fpm/php-fpm.conf"},
		{"php-fpm8.1", "php-fpm8.1", "/etc/php/8.1/fpm/php-fpm.conf"},
	} {
		p, err := LookupProfile(tt.name)
		if err != nil || p.Name != tt.name || p.Binary != filepath.Join(dir, tt.bin) || p.Conf != tt.conf || p.Kind != "php-fpm" {
			t.Errorf("%s: %+v, %v", tt.name, p, err)
		}
	}
	if _, err := LookupProfile("php-fpm"); !errors.Is(err, ErrUnknownService) || !strings.Contains(err.Error(), "no php-fpm binary") {
		t.Errorf("php-fpm with none installed: %v", err)
	}
	touch("php-fpm8.2")
	touch("php-fpm8.2.dpkg-dist") // not a version
	if p, err := LookupProfile("php-fpm"); err != nil || p.Binary != filepath.Join(dir, "php-fpm8.2") || p.Conf != "/etc/php/8.2/fpm/php-fpm.conf" {
		t.Errorf("php-fpm with 8.2 installed: %+v, %v", p, err)
	}
	touch("php-fpm8.3")
	_, err := LookupProfile("php-fpm")
	if !errors.Is(err, ErrUnknownService) || !strings.Contains(err.Error(), "php-fpm8.2, ") || !strings.Contains(err.Error(), "php8.3-fpm") {
		t.Errorf("php-fpm with two installed: %v", err)
	}
	for _, bad := range []string{"php-fpm8", "php8.2-fpmx", "xphp-fpm"} {
		if _, err := LookupProfile(bad); !errors.Is(err, ErrUnknownService) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

// TestFPMFatal: lines php-fpm 8.2 wrote when it failed (provoked for real:
// a bad config, a port taken, a socket held by orphans), and lines that
// must not count.
func TestFPMFatal(t *testing.T) {
	k := fpmKind{}
	for _, line := range []string{
		"[29-Nov-2026 04:03:44] ERROR: FPM initialization failed",
		"[29-Nov-2026 04:02:19] ERROR: Another FPM instance seems to already listen on /tmp/fpmx/www.sock",
		"[29-Nov-2026 04:02:18] ERROR: unable to bind listening socket for address '127.0.0.1:9111': Address already in use (98)",
		"[29-Nov-2026 04:02:18] ERROR: fork() failed: Cannot allocate memory (12)",
		"[ERROR] FPM initialization failed",
	} {
		if !k.Fatal(line) {
			t.Errorf("not fatal: %q", line)
		}
	}
	for _, line := range []string{
		"[29-Nov-2026 04:03:44] NOTICE: Reloading in progress ...",
		"[29-Nov-2026 04:03:44] ERROR: [/tmp/fpmx/live.conf:11] unknown entry 'bogus'", // followed by the fatal line
		"[29-Nov-2026 04:03:44] WARNING: [pool www] child 5 said into stderr: \"ERROR: FPM initialization failed\"",
		"[29-Nov-2026 04:03:44] WARNING: [pool www] child 5 exited on signal 15 (SIGTERM) after 1.0 seconds from start",
	} {
		if k.Fatal(line) {
			t.Errorf("fatal: %q", line)
		}
	}
}

// fpmReloadLog is what php-fpm 8.2 logged for a start and two USR2
// reloads of a daemonized master (pids 4, 14, 21), then a reload whose
// re-exec died on a bad config and a fresh start (pid 40).
const fpmReloadLog = `[29-Nov-2026 04:01:56] NOTICE: fpm is running, pid 4
[29-Nov-2026 04:01:56] NOTICE: ready to handle connections
[29-Nov-2026 04:01:56] NOTICE: systemd monitor interval set to 10000ms
[29-Nov-2026 04:01:56] NOTICE: Reloading in progress ...
[29-Nov-2026 04:01:56] NOTICE: reloading: execvp("php-fpm8.2", {"php-fpm8.2", "-y", "/tmp/fpmx/php-fpm.conf"})
[29-Nov-2026 04:01:56] NOTICE: using inherited socket fd=8, "127.0.0.1:9111"
[29-Nov-2026 04:01:56] NOTICE: using inherited socket fd=8, "127.0.0.1:9111"
[29-Nov-2026 04:01:56] NOTICE: fpm is running, pid 14
[29-Nov-2026 04:01:56] NOTICE: ready to handle connections
[29-Nov-2026 04:01:56] NOTICE: Reloading in progress ...
[29-Nov-2026 04:01:56] NOTICE: fpm is running, pid 21
[29-Nov-2026 04:01:56] NOTICE: ready to handle connections
`

func TestFPMReloaded(t *testing.T) {
	k := fpmKind{}
	old := ipcguard.Proc{PID: 4}
	_, afterSignal, _ := strings.Cut(fpmReloadLog, "10000ms\n")
	if pid, err := k.Reloaded(afterSignal, old); pid != 14 || err != nil {
		t.Errorf("reloaded = %d, %v; want 14 (the first reload's master)", pid, err)
	}
	notReady, _, _ := strings.Cut(afterSignal, "NOTICE: ready")
	if pid, _ := k.Reloaded(notReady, old); pid != 0 {
		t.Errorf("reloaded before ready = %d, want 0", pid)
	}
	if pid, _ := k.Reloaded(fpmReloadLog[:strings.Index(fpmReloadLog, "NOTICE: Reloading")], old); pid != 0 {
		t.Errorf("reloaded with the start's notices only = %d, want 0", pid)
	}
	if n := k.ReloadsLogged(fpmReloadLog, ipcguard.Proc{PID: 21}); n != 2 {
		t.Errorf("reloadsLogged = %d, want 2", n)
	}
	if n := k.ReloadsLogged(fpmReloadLog, ipcguard.Proc{PID: 14}); n != -1 {
		t.Errorf("reloadsLogged for a master the log does not end with = %d, want -1", n)
	}
	restarted := fpmReloadLog + "[x] NOTICE: Reloading in progress ...\n[x] ERROR: FPM initialization failed\n" +
		"[x] NOTICE: fpm is running, pid 40\n[x] NOTICE: Reloading in progress ...\n[x] NOTICE: fpm is running, pid 41\n"
	if n := k.ReloadsLogged(restarted, ipcguard.Proc{PID: 41}); n != 1 {
		t.Errorf("reloadsLogged after a failed re-exec and a fresh start = %d, want 1", n)
	}
}

// TestFPMClearLeftovers removes only a socket file that refuses
// connections: never one that accepts, nor a regular file.
func TestFPMClearLeftovers(t *testing.T) {
	dir := t.TempDir()
	stale, live, file := filepath.Join(dir, "stale.sock"), filepath.Join(dir, "live.sock"), filepath.Join(dir, "file.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close() // the file stays, nothing listens: what a killed master leaves
	ll, err := net.Listen("unix", live)
	if err != nil {
		t.Fatal(err)
	}
	defer ll.Close()
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	rc := RunConfig{Listen: []string{"127.0.0.1:9000", stale, live, file, filepath.Join(dir, "missing.sock")}}
	removed, err := fpmKind{}.ClearLeftovers(context.Background(), rc, zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil || !reflect.DeepEqual(removed, []string{stale}) {
		t.Fatalf("removed %q, %v; want only %s", removed, err, stale)
	}
	for _, p := range []string{live, file} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	if _, err := os.Lstat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale socket still there: %v", err)
	}
}

func TestFPMLadder(t *testing.T) {
	l := FPMLadder(DefaultGracefulWait)
	if len(l) != 3 || l[0].Signal != syscall.SIGQUIT || l[1].Signal != syscall.SIGTERM || l[2].Signal != syscall.SIGKILL || !l[2].All {
		t.Errorf("ladder %v", l)
	}
	if l := FPMLadder(0); l[0].Signal != syscall.SIGTERM {
		t.Errorf("ladder without graceful %v", l)
	}
}

// TestFPMFiles: the main file, then each include's matches in order (a
// comment or another key is no include), then php.ini and conf.d/*.ini
// when php.ini is beside the main file.
func TestFPMFiles(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"pool.d/b.conf", "pool.d/a.conf", "pool.d/x.txt", "extra.conf"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(dir, "php-fpm.conf")
	text := "[global]\n;include=/nope/*.conf\ninclude = pool.d/*.conf\nerror_log = x\ninclude=\"" + dir + "/extra.conf\"\n"
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	want := []string{conf, dir + "/pool.d/a.conf", dir + "/pool.d/b.conf", dir + "/extra.conf"}
	if got := fpmFiles(conf); !slices.Equal(got, want) {
		t.Errorf("files %q, want %q", got, want)
	}
	// PHP's own php.ini and conf.d beside it (Debian's /etc/php/X.Y/fpm).
	for _, f := range []string{"php.ini", "conf.d/20-x.ini", "conf.d/10-opcache.ini"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want = append(want, dir+"/php.ini", dir+"/conf.d/10-opcache.ini", dir+"/conf.d/20-x.ini")
	if got := fpmFiles(conf); !slices.Equal(got, want) {
		t.Errorf("files with php.ini %q, want %q", got, want)
	}
}
