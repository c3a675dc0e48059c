//go:build linux

package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	addr1 = "127.0.0.1:18080"
	addr2 = "127.0.0.1:18081"

	safeRestart        = "safe-restart restart"
	safeRestartGrace   = "safe-restart restart --graceful-timeout 30s"
	safeRestartOverlap = "safe-restart restart, tcp_migrate_req=1"
	gracefulStopWait   = "-k graceful-stop, wait, -k start"
	stopWaitStart      = "-k stop, wait, -k start"
	hupRestart         = "apache2 -t && -k restart (HUP)"
	kill9Start         = "kill -9 group, -k start"
)

// conf is prefork with two listeners (the accept mutex) and sysvsem
// mutexes, as on the machines of the outages.
const conf = `ServerRoot "DIR"
PidFile "DIR/apache2.pid"
ErrorLog "DIR/error.log"
LogLevel notice
ServerName 127.0.0.1
User www-data
Group www-data
LoadModule mpm_prefork_module /usr/lib/apache2/modules/mod_mpm_prefork.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule authn_core_module /usr/lib/apache2/modules/mod_authn_core.so
LoadModule auth_digest_module /usr/lib/apache2/modules/mod_auth_digest.so
Mutex sysvsem default
StartServers 4
Listen ` + addr1 + `
Listen ` + addr2 + `
DocumentRoot "DIR/htdocs"
<Directory "DIR/htdocs">
    Require all granted
</Directory>
`

type server struct {
	dir, conf, bin string
}

// method is one row of the benchmark: a way of restarting the server, or a
// reference row.
type method struct {
	name string
	// do restarts the server; measure times it and the wait until the
	// server answers again.
	do func() error
	// stop, if set, runs before do, probed but not timed: do is then the
	// server's start alone.
	stop func() error
}

func newServer(bin string) (*server, error) {
	dir, err := os.MkdirTemp("", "bench-restart-")
	if err != nil {
		return nil, err
	}
	s := &server{dir: dir, conf: filepath.Join(dir, "httpd.conf"), bin: bin}
	if err := os.MkdirAll(filepath.Join(dir, "htdocs"), 0o755); err != nil {
		return nil, err
	}
	for _, f := range []struct{ name, text string }{
		{"httpd.conf", strings.ReplaceAll(conf, "DIR", dir)},
		{"htdocs/index.html", "ok\n"},
	} {
		if err := os.WriteFile(filepath.Join(dir, f.name), []byte(f.text), 0o644); err != nil {
			return nil, err
		}
	}
	return s, os.Chmod(dir, 0o755)
}

// cleanup stops the Apache the benchmark left running (its process group:
// the master and its children), so that the next server can bind the
// port, and removes its directory.
func (s *server) cleanup() {
	if pid, err := s.masterPID(); err == nil {
		if err := syscall.Kill(-pid, syscall.SIGKILL); err == nil {
			_ = s.waitGone(pid)
		}
	}
	reapZombies()
	os.RemoveAll(s.dir)
}

func (s *server) probe() string { return probeGET(addr1, "/index.html") }

func (s *server) apache(args ...string) error {
	out, err := exec.Command("/usr/sbin/apache2", append([]string{"-f", s.conf, "-C", reuseport}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("apache2 %v: %v: %s", args, err, out)
	}
	return nil
}

// methodFilter selects the methods to run (-methods).
var methodFilter = regexp.MustCompile("")

// methods are the restart methods selected by -methods.
func (s *server) methods() []method {
	var out []method
	for _, m := range s.allMethods() {
		if methodFilter.MatchString(m.name) {
			out = append(out, m)
		}
	}
	return out
}

// allMethods are the reference rows, then the restart methods.
func (s *server) allMethods() []method {
	return []method{
		noiseFloorMethod(),
		ownStartMethod(func() error { return s.stopWait("stop") }, func() error { return s.apache("-k", "start") }),
		{name: overlapNoMigrate, do: func() error { return s.overlap(false) }},
		{name: overlapMigrate, do: func() error { return s.overlap(true) }},
		{name: safeRestartOverlap, do: func() error { return s.safeRestart(true) }},
		{name: safeRestart, do: func() error { return s.safeRestart(false) }},
		{name: safeRestartGrace, do: func() error { return s.safeRestart(false, "--graceful-timeout", "30s") }},
		{name: gracefulStopWait, do: func() error { return s.stopWaitStart("graceful-stop") }},
		{name: stopWaitStart, do: func() error { return s.stopWaitStart("stop") }},
		{name: hupRestart, do: func() error {
			if err := s.apache("-t"); err != nil {
				return err
			}
			return s.apache("-k", "restart")
		}},
		{name: kill9Start, do: func() error {
			pid, err := s.masterPID()
			if err != nil {
				return err
			}
			if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
				return err
			}
			if err := s.waitGone(pid); err != nil {
				return err
			}
			return s.apache("-k", "start")
		}},
	}
}

// safeRestart runs safe-restart restart; with migrate (and a master it
// started, as every row leaves) it overlaps the masters, else it stops and
// starts.
func (s *server) safeRestart(migrate bool, flags ...string) error {
	if err := setMigrateReq(migrate); err != nil {
		return err
	}
	args := append([]string{"--log-format", "json", "restart", "apache2", "--conf", s.conf, "--state-dir", filepath.Join(s.dir, "state")}, flags...)
	if out, err := exec.Command(s.bin, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

// stopWaitStart is Apache's own stop (or graceful-stop), a wait for the
// master to exit, and Apache's own start.
func (s *server) stopWaitStart(how string) error {
	if err := s.stopWait(how); err != nil {
		return err
	}
	return s.apache("-k", "start")
}

// stopWait is Apache's own stop (or graceful-stop) and a wait for the
// master to exit.
func (s *server) stopWait(how string) error {
	pid, err := s.masterPID()
	if err != nil {
		return err
	}
	if err := s.apache("-k", how); err != nil {
		return err
	}
	return s.waitGone(pid)
}

func (s *server) masterPID() (int, error) {
	data, err := os.ReadFile(filepath.Join(s.dir, "apache2.pid"))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(data)))
}

// waitGone waits until pid has exited and, as PID 1 of this namespace, reaps
// it and the other zombies re-parented here (a zombie master would make
// Apache's next start say "already running"). No other child of ours runs
// while it does.
func (s *server) waitGone(pid int) error { return waitGone(pid) }

// waitGone waits until pid has exited, reaping the zombies re-parented
// here.
func waitGone(pid int) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		reapZombies()
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); errors.Is(err, os.ErrNotExist) {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("pid %d did not exit", pid)
}

func reapZombies() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}

// waitServing waits until GET / answers 200 on both listeners.
func (s *server) waitServing(d time.Duration) error {
	deadline := time.Now().Add(d)
	client := http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		reapZombies()
		ok := 0
		for _, a := range []string{addr1, addr2} {
			if resp, err := client.Get("http://" + a + "/index.html"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					ok++
				}
			}
		}
		if ok == 2 {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return errors.New("the server did not come back")
}
