//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/safe-restart/safe-restart/internal/prober"
)

const (
	fpmAddr = "127.0.0.1:19000"

	safeRestartNoOverlap = "safe-restart restart --no-overlap (handoff)"
	safeRestartPlain     = "safe-restart restart --no-handoff"
	nginxUSR2            = "nginx USR2 upgrade, QUIT old"
	nginxQuitStart       = "nginx -s quit, wait, start"
	fpmUSR2              = "php-fpm USR2"
	fpmQuitStart         = "php-fpm QUIT, wait, start"
)

// nginxConf serves DIR/htdocs on addr1 and, with a FastCGI backend,
// passes *.php to it.
const nginxConf = `user www-data;
worker_processes 2;
pid DIR/nginx.pid;
error_log DIR/nginx-error.log;
events { worker_connections 1024; }
http {
    access_log off;
    server {
        listen ` + addr1 + `;
        root DIR/htdocs;
        location ~ \.php$ {
            fastcgi_pass ` + fpmAddr + `;
            fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
            fastcgi_param REQUEST_METHOD $request_method;
        }
    }
}
`

// fpmConf is one pool of 8 static workers on fpmAddr.
const fpmConf = `[global]
pid = DIR/php-fpm.pid
error_log = DIR/php-fpm.log
daemonize = yes
process_control_timeout = 10s
[www]
user = www-data
group = www-data
listen = ` + fpmAddr + `
pm = static
pm.max_children = 8
`

// nginxFPM is nginx on addr1, and php-fpm behind it when fpm is set: the
// target is then php-fpm, probed through nginx (GET /index.php).
type nginxFPM struct {
	dir, bin string
	fpm      bool
}

func newNginxFPM(bin string, fpm bool) (*nginxFPM, error) {
	dir, err := os.MkdirTemp("", "bench-restart-")
	if err != nil {
		return nil, err
	}
	s := &nginxFPM{dir: dir, bin: bin, fpm: fpm}
	if err := os.MkdirAll(filepath.Join(dir, "htdocs"), 0o755); err != nil {
		return nil, err
	}
	for name, text := range map[string]string{"nginx.conf": nginxConf, "php-fpm.conf": fpmConf,
		"htdocs/index.html": "ok\n", "htdocs/index.php": "<?php echo \"ok\\n\";\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.ReplaceAll(text, "DIR", dir)), 0o644); err != nil {
			return nil, err
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	if fpm {
		if err := s.fpmStart(); err != nil {
			return nil, err
		}
	}
	return s, s.nginx("-c", s.path("nginx.conf"))
}

func (s *nginxFPM) path(name string) string { return filepath.Join(s.dir, name) }

// cleanup stops what it started and removes its directory.
func (s *nginxFPM) cleanup() {
	for _, pidFile := range []string{"nginx.pid", "php-fpm.pid"} {
		if pid, err := readPID(s.path(pidFile)); err == nil {
			_ = syscall.Kill(pid, syscall.SIGTERM)
			_ = waitGone(pid)
		}
	}
	os.RemoveAll(s.dir)
}

func (s *nginxFPM) probe() string { return prober.GET(s.endpoint()) }

func (s *nginxFPM) endpoint() (string, string) {
	if s.fpm {
		return addr1, "/index.php"
	}
	return addr1, "/index.html"
}

func (s *nginxFPM) waitServing(d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		reapZombies()
		if s.probe() == "ok" {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return errors.New("the server did not come back")
}

func (s *nginxFPM) methods() []method {
	service, conf := "nginx", s.path("nginx.conf")
	if s.fpm {
		service, conf = "php8.2-fpm", s.path("php-fpm.conf")
	}
	restart := func(flags ...string) error {
		return runSafeRestart(s.bin, service, conf, s.path("state"), flags...)
	}
	// Every row but safe-restart's second restart starts from a master
	// the server's own start started (as its init does): a master that
	// safe-restart started with inherited sockets may ignore nginx's USR2
	// (see the report).
	pidFile, start := "nginx.pid", func() error { return s.nginx("-c", conf) }
	upgrade, quitStart := method{name: nginxUSR2, do: s.nginxUpgrade}, nginxQuitStart
	if s.fpm {
		pidFile, start = "php-fpm.pid", s.fpmStart
		upgrade, quitStart = method{name: fpmUSR2, do: s.fpmReload}, fpmQuitStart
	}
	stock := func() error { return errors.Join(s.quitStart(pidFile, start), s.waitServing(20*time.Second)) }
	upgrade.prepare = stock
	return selected([]method{
		noiseFloorMethod(),
		ownStartMethod(func() error { return s.quit(pidFile) }, start),
		upgrade,
		{name: quitStart, prepare: stock, do: func() error { return s.quitStart(pidFile, start) }},
		{name: safeRestartPlain, prepare: stock, do: func() error { return restart("--no-handoff") }},
		{name: safeRestartNoOverlap, prepare: stock, do: func() error { return restart("--no-overlap") }},
		{name: safeRestartFirst, prepare: stock, do: func() error { return restart() }},
		{name: safeRestartSecond, prepare: func() error { return errors.Join(stock(), restart()) }, do: func() error { return restart() }},
	})
}

func (s *nginxFPM) nginx(args ...string) error {
	if out, err := exec.Command("/usr/sbin/nginx", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("nginx %v: %v: %s", args, err, out)
	}
	return nil
}

func (s *nginxFPM) fpmStart() error {
	if out, err := exec.Command("/usr/sbin/php-fpm8.2", "-y", s.path("php-fpm.conf")).CombinedOutput(); err != nil {
		return fmt.Errorf("php-fpm8.2: %v: %s", err, out)
	}
	return nil
}

// nginxUpgrade is nginx's binary upgrade: USR2 (the master starts a new
// one with its sockets and renames its pidfile to .oldbin), then QUIT to
// the old master once the new one wrote the pidfile.
func (s *nginxFPM) nginxUpgrade() error {
	old, err := readPID(s.path("nginx.pid"))
	if err != nil {
		return err
	}
	if err := syscall.Kill(old, syscall.SIGUSR2); err != nil {
		return err
	}
	if err := waitNewPID(s.path("nginx.pid"), old); err != nil {
		return fmt.Errorf("USR2 to %d: %w", old, err)
	}
	if err := syscall.Kill(old, syscall.SIGQUIT); err != nil {
		return err
	}
	return waitGone(old)
}

// fpmReload is php-fpm's USR2: the master re-executes itself with its
// sockets.
func (s *nginxFPM) fpmReload() error {
	old, err := readPID(s.path("php-fpm.pid"))
	if err != nil {
		return err
	}
	if err := syscall.Kill(old, syscall.SIGUSR2); err != nil {
		return err
	}
	return waitNewPID(s.path("php-fpm.pid"), old)
}

// quitStart is QUIT, a wait for the master to exit, and start.
func (s *nginxFPM) quitStart(pidFile string, start func() error) error {
	if err := s.quit(pidFile); err != nil {
		return err
	}
	return start()
}

// quit sends QUIT to the master named in pidFile and waits for it to exit.
func (s *nginxFPM) quit(pidFile string) error {
	pid, err := readPID(s.path(pidFile))
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGQUIT); err != nil {
		return err
	}
	return waitGone(pid)
}

func readPID(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	var pid int
	_, err = fmt.Sscan(strings.TrimSpace(string(data)), &pid)
	return pid, err
}

// waitNewPID waits until the pidfile names a live process other than old.
func waitNewPID(path string, old int) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		reapZombies()
		if pid, err := readPID(path); err == nil && pid != old && syscall.Kill(pid, 0) == nil {
			return nil
		}
		time.Sleep(2 * time.Millisecond)
	}
	return errors.New("no new master in the pidfile")
}
