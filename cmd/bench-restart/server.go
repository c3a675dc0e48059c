//go:build linux

package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/safe-restart/safe-restart/internal/prober"
)

const (
	addr1 = "127.0.0.1:18080"
	addr2 = "127.0.0.1:18081"

	safeRestartFirst    = "safe-restart restart (first: stock master)"
	safeRestartSecond   = "safe-restart restart (second: its own master)"
	apacheNoOverlap     = "safe-restart restart --no-overlap"
	apacheNoOverlapWait = "safe-restart restart --no-overlap --graceful-timeout 30s"
	gracefulStopWait    = "-k graceful-stop, wait, -k start"
	stopWaitStart       = "-k stop, wait, -k start"
	hupRestart          = "apache2 -t && -k restart (HUP)"
	kill9Start          = "kill -9 group, -k start"
	apacheReuseportFlag = "-C"
)

// conf has two listeners (the accept mutex) and keep-alive (Apache's
// default); prefork gets sysvsem mutexes, as on the machines of the
// outages, and enough children for the clients' kept connections.
const conf = `ServerRoot "DIR"
PidFile "DIR/apache2.pid"
ErrorLog "DIR/error.log"
LogLevel notice
ServerName 127.0.0.1
User www-data
Group www-data
MPMCONF
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule authn_core_module /usr/lib/apache2/modules/mod_authn_core.so
LoadModule auth_digest_module /usr/lib/apache2/modules/mod_auth_digest.so
KeepAlive On
Listen ` + addr1 + `
Listen ` + addr2 + `
DocumentRoot "DIR/htdocs"
<Directory "DIR/htdocs">
    Require all granted
</Directory>
`

// mpmConf is each MPM's part of conf.
var mpmConf = map[string]string{
	"prefork": `LoadModule mpm_prefork_module /usr/lib/apache2/modules/mod_mpm_prefork.so
Mutex sysvsem default
StartServers 64
MinSpareServers 32
MaxSpareServers 128
ServerLimit 256
MaxRequestWorkers 256`,
	"event": `LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
StartServers 3
ThreadsPerChild 25`,
}

type server struct {
	dir, conf, bin, mpm string
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
	// prepare, if set, runs before the measure, neither probed nor
	// timed: it brings the server to the state the method starts from.
	prepare func() error
}

func newServer(bin, mpm string) (*server, error) {
	mc, ok := mpmConf[mpm]
	if !ok {
		return nil, fmt.Errorf("unknown MPM %q (prefork, event)", mpm)
	}
	dir, err := os.MkdirTemp("", "bench-restart-")
	if err != nil {
		return nil, err
	}
	s := &server{dir: dir, conf: filepath.Join(dir, "httpd.conf"), bin: bin, mpm: mpm}
	if err := os.MkdirAll(filepath.Join(dir, "htdocs"), 0o755); err != nil {
		return nil, err
	}
	for _, f := range []struct{ name, text string }{
		{"httpd.conf", strings.ReplaceAll(strings.Replace(conf, "MPMCONF", mc, 1), "DIR", dir)},
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
// port, and removes its directory. It waits for the whole group: a child
// still in its exit holds the listening sockets after the master is gone.
func (s *server) cleanup() {
	if pid, err := s.masterPID(); err == nil {
		if err := syscall.Kill(-pid, syscall.SIGKILL); err == nil {
			_ = waitGroupGone(pid)
		}
	}
	reapZombies()
	os.RemoveAll(s.dir)
}

func (s *server) probe() string { return prober.GET(s.endpoint()) }

func (s *server) endpoint() (string, string) { return addr1, "/index.html" }

// apache runs apache2 -f conf with args, as an init script does.
func (s *server) apache(args ...string) error {
	out, err := exec.Command("/usr/sbin/apache2", append([]string{"-f", s.conf}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("apache2 %v: %v: %s", args, err, out)
	}
	return nil
}

// startAfresh stops the running master (apache2 -k stop, and a wait) and
// starts one with apache2 -k start: the stock master an init starts, or,
// with reuseport, one whose listeners have SO_REUSEPORT (as safe-restart
// starts it), which the overlap by hand needs.
func (s *server) startAfresh(withReuseport bool) error {
	if err := s.stopSurely(); err != nil {
		return err
	}
	args := []string{"-k", "start"}
	if withReuseport {
		args = append(args, apacheReuseportFlag, reuseport)
	}
	if err := s.apache(args...); err != nil {
		return err
	}
	return s.waitServing(20 * time.Second)
}

// methods are the restart methods selected by -methods.
func (s *server) methods() []method { return selected(s.allMethods()) }

// allMethods are the reference rows, then the restart methods. Every
// row but the overlap by hand, which needs SO_REUSEPORT on the old
// master, and safe-restart's second restart starts from a stock master
// (apache2 -k start) and net.ipv4.tcp_migrate_req=0, the defaults.
func (s *server) allMethods() []method {
	stock := func() error { return s.startAfresh(false) }
	withReuseport := func() error { return s.startAfresh(true) }
	return []method{
		noiseFloorMethod(),
		ownStartMethod(func() error { return s.stopWait("stop") }, func() error { return s.apache("-k", "start") }),
		{name: overlapNoMigrate, prepare: withReuseport, do: func() error { return s.overlap(false) }},
		{name: overlapMigrate, prepare: withReuseport, do: func() error { return s.overlap(true) }},
		{name: safeRestartFirst, prepare: stock, do: func() error { return s.safeRestart() }},
		{name: safeRestartSecond, prepare: func() error {
			return errors.Join(stock(), s.safeRestart())
		}, do: func() error { return s.safeRestart() }},
		{name: apacheNoOverlap, prepare: stock, do: func() error { return s.safeRestart("--no-overlap") }},
		{name: apacheNoOverlapWait, prepare: stock, do: func() error { return s.safeRestart("--no-overlap", "--graceful-timeout", "30s") }},
		{name: gracefulStopWait, prepare: stock, do: func() error { return s.stopWaitStart("graceful-stop") }},
		{name: stopWaitStart, prepare: stock, do: func() error { return s.stopWaitStart("stop") }},
		{name: hupRestart, prepare: stock, do: func() error {
			if err := s.apache("-t"); err != nil {
				return err
			}
			return s.apache("-k", "restart")
		}},
		{name: kill9Start, prepare: stock, do: func() error {
			pid, err := s.masterPID()
			if err != nil {
				return err
			}
			if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
				return err
			}
			// The children hold the ports until they have exited too.
			if err := waitGroupGone(pid); err != nil {
				return err
			}
			return s.apache("-k", "start")
		}},
	}
}

// safeRestart runs safe-restart restart with flags.
func (s *server) safeRestart(flags ...string) error {
	return runSafeRestart(s.bin, "apache2", s.conf, filepath.Join(s.dir, "state"), flags...)
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

// stopSurely is stopWait("stop") for a row's preparation, which must not
// fail on Apache's own race: a TERM that reaches the master while it
// finishes a restart (the row before may be -k restart) is lost, and the
// master serves on. It asks again, up to three times, 10 s apart.
func (s *server) stopSurely() error {
	pid, err := s.masterPID()
	if err != nil {
		return err
	}
	for try := 1; ; try++ {
		if err := s.apache("-k", "stop"); err != nil {
			return err
		}
		err := waitGoneWithin(pid, 10*time.Second)
		if err == nil || try == 3 {
			return err
		}
	}
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
func waitGone(pid int) error { return waitGoneWithin(pid, 30*time.Second) }

// waitGoneWithin is waitGone for up to d.
func waitGoneWithin(pid int, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		reapZombies()
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); errors.Is(err, os.ErrNotExist) {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("pid %d did not exit", pid)
}

// waitGroupGone waits until no process of the process group pgid is left
// (the benchmark, PID 1 of its namespace, reaps them).
func waitGroupGone(pgid int) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		reapZombies()
		if !groupAlive(pgid) {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	return fmt.Errorf("process group %d did not exit", pgid)
}

// groupAlive reports whether a process of the group pgid is in /proc.
func groupAlive(pgid int) bool {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...: comm may hold spaces, not ")".
		f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
		if len(f) > 2 && f[2] == strconv.Itoa(pgid) {
			return true
		}
	}
	return false
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
