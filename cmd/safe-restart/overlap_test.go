package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/safe-restart/safe-restart/internal/apachetest"
	"github.com/safe-restart/safe-restart/internal/nstest"
	"github.com/safe-restart/safe-restart/supervise"
)

// setMigrateReq sets net.ipv4.tcp_migrate_req in the test's private
// network namespace.
func setMigrateReq(t *testing.T, v string) {
	t.Helper()
	if err := os.WriteFile("/proc/sys/net/ipv4/tcp_migrate_req", []byte(v+"\n"), 0o644); err != nil {
		t.Fatalf("set net.ipv4.tcp_migrate_req (Linux >= 5.14): %v", err)
	}
}

// restartJSON runs `safe-restart restart --json` and returns its exit code,
// report and log.
func apacheRestartJSON(t *testing.T, srv *apachetest.Server, state string, args ...string) (int, supervise.RestartReport, string) {
	t.Helper()
	code, out, errOut := runCLI(t, append([]string{"restart", "apache2", "--conf", srv.ConfPath, "--state-dir", state, "--json", "--graceful-timeout", "20s"}, args...)...)
	var rep supervise.RestartReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("restart: exit %d, report %q: %v\n%s", code, out, err, errOut)
	}
	return code, rep, errOut
}

// freshGet opens a new connection to addr, sends one GET and classifies
// the outcome: "ok", "refused", "reset" or "other: ...".
func freshGet(addr string) string {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if errors.Is(err, syscall.ECONNREFUSED) {
		return "refused"
	}
	if err != nil {
		return "other: " + err.Error()
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err = io.WriteString(c, "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"); err == nil {
		var resp *http.Response
		if resp, err = http.ReadResponse(bufio.NewReader(c), nil); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return "ok"
			}
			return "other: " + resp.Status
		}
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.EPIPE) {
		return "reset"
	}
	return "other: " + err.Error()
}

// outcomes counts freshGet outcomes of concurrent clients.
type outcomes struct {
	mu sync.Mutex
	n  map[string]int
}

func (o *outcomes) add(r string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.n[r]++
}

func (o *outcomes) failures() map[string]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	f := map[string]int{}
	for k, v := range o.n {
		if k != "ok" {
			f[k] = v
		}
	}
	return f
}

// freshLoad runs n clients, each opening a new connection per request to
// addr, until the returned stop is called (see load).
func freshLoad(t *testing.T, n int, addr string) (stop func() *outcomes) {
	t.Helper()
	o := &outcomes{n: map[string]int{}}
	stopLoad := load(t, n, func() bool {
		r := freshGet(addr)
		o.add(r)
		return r == "ok"
	})
	return func() *outcomes {
		stopLoad()
		return o
	}
}

// TestOverlapRestartUnderLoad: on a stock host (Apache started by its own
// `apache2 -k start`, as an init starts it, so its listeners lack
// SO_REUSEPORT; net.ipv4.tcp_migrate_req at its default, 0), every full
// restart of Apache (prefork, sysvsem mutexes) starts the new master
// beside the old one, steers new connections to it and lets the old
// sockets drain, and refuses and resets no request of 50 concurrent
// clients, each on a new connection; every restart replaces the master,
// keeps one generation's semaphore sets, and leaves the pidfile naming the
// new master. With tcp_migrate_req=1 the same holds; --no-overlap says why
// it did not overlap.
func TestOverlapRestartUnderLoad(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	overlapUnderLoad(t, apachetest.Config{MPM: "prefork", SysvSem: true, AuthDigest: true})
}

// TestOverlapRestartUnderLoadEvent is TestOverlapRestartUnderLoad with the
// event MPM (Debian's default) and its default mutexes.
func TestOverlapRestartUnderLoadEvent(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	overlapUnderLoad(t, apachetest.Config{MPM: "event"})
}

// overlapUnderLoad runs the restarts of TestOverlapRestartUnderLoad on an
// Apache of cfg.
func overlapUnderLoad(t *testing.T, cfg apachetest.Config) {
	setMigrateReq(t, "0")
	srv := apachetest.Start(t, cfg)
	state := t.TempDir()
	sets := len(semIDs(t))

	stop := freshLoad(t, 50, srv.Listen[0])
	const n = 4
	for i := range n {
		if i == n-1 {
			setMigrateReq(t, "1")
		}
		old := srv.MasterPID()
		code, rep, errOut := apacheRestartJSON(t, srv, state)
		if code != exitOK || !rep.Overlap || !rep.Steered {
			t.Fatalf("restart %d: exit %d, overlap %v, steered %v (skipped: %q)\n%s", i+1, code, rep.Overlap, rep.Steered, rep.OverlapSkipped, errOut)
		}
		if now := srv.MasterPID(); now == old || rep.Start.Master == nil || rep.Start.Master.PID != now {
			t.Fatalf("restart %d: pidfile names %d, old %d, report %+v", i+1, now, old, rep.Start.Master)
		}
		if rep.Stop.Master == nil || rep.Stop.Master.PID != old || cfg.SysvSem != (len(rep.Start.Created) > 0) {
			t.Fatalf("restart %d: stopped %+v (want %d), created sets %v", i+1, rep.Stop.Master, old, rep.Start.Created)
		}
		if _, err := os.Stat(srv.PidFile + ".safe-restart-old"); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("restart %d: the old master's pidfile was left aside: %v", i+1, err)
		}
		if got := len(semIDs(t)); got != sets {
			t.Fatalf("restart %d: %d semaphore sets, want %d (one generation)", i+1, got, sets)
		}
		if masters := countMasters(t, srv); masters != 1 {
			t.Fatalf("restart %d: %d masters", i+1, masters)
		}
	}
	o := stop()
	if f := o.failures(); len(f) > 0 || o.n["ok"] == 0 {
		t.Fatalf("%d overlap restarts under 50 clients: %d ok, failures %v; want none\n%s", n, o.n["ok"], f, strings.Join(lastLinesOf(srv.ErrorLogText(), 30), "\n"))
	}
	t.Logf("%d overlap restarts under 50 clients: %d requests, no failure", n, o.n["ok"])

	code, rep, errOut := apacheRestartJSON(t, srv, state, "--no-overlap")
	if code != exitOK || rep.Overlap || !strings.Contains(rep.OverlapSkipped, "--no-overlap") {
		t.Fatalf("restart with --no-overlap: exit %d, overlap %v, skipped %q; want a plain restart that says why\n%s", code, rep.Overlap, rep.OverlapSkipped, errOut)
	}
}

// TestOverlapRestartNewMasterFails: a new master that cannot bind one of
// its listeners (a socket without SO_REUSEPORT holds it; the config test
// cannot see that) is stopped, and the old master (started by its own
// -k start) keeps serving with its pidfile back in place and its
// listeners as they were: without SO_REUSEPORT, so that no other socket
// can bind beside them.
func TestOverlapRestartNewMasterFails(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := apachetest.Start(t, apachetest.Config{MPM: "prefork", SysvSem: true})
	state := t.TempDir()
	old := srv.MasterPID()
	sets := len(semIDs(t))

	holder, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	conf := readFile(t, srv.ConfPath)
	if err := os.WriteFile(srv.ConfPath, []byte(conf+"\nListen "+holder.Addr().String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// --no-trial: the trial start and the bind check would refuse this
	// change before acting (TestTrialRefusesWhatCannotRun); this test is of
	// a new master that fails beside the old one anyway.
	code, rep, errOut := apacheRestartJSON(t, srv, state, "--no-trial")
	if code == exitOK || !rep.Overlap || !strings.Contains(errOut, "still serves") {
		t.Fatalf("restart whose new master cannot bind: exit %d, overlap %v; want a failure that leaves the old master\n%s", code, rep.Overlap, errOut)
	}
	if srv.MasterPID() != old {
		t.Fatalf("the pidfile names %d, want the old master %d", srv.MasterPID(), old)
	}
	if masters := countMasters(t, srv); masters != 1 {
		t.Fatalf("%d masters after the failed overlap, want the old one only", masters)
	}
	if c, _, err := srv.Get("/"); err != nil || c != 200 {
		t.Fatalf("the old master stopped serving: %d, %v", c, err)
	}
	if got := len(semIDs(t)); got != sets {
		t.Fatalf("%d semaphore sets after the failed overlap, want %d", got, sets)
	}
	for _, addr := range srv.Listen {
		if reusePortOf(t, old, addr) {
			t.Fatalf("the old master's listener %s kept SO_REUSEPORT after the failed overlap", addr)
		}
	}
}

// reusePortOf reports whether the socket pid holds bound to the IPv4
// address addr has SO_REUSEPORT.
func reusePortOf(t *testing.T, pid int, addr string) bool {
	t.Helper()
	fd := socketOf(t, pid, addr)
	defer unix.Close(fd)
	v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT)
	if err != nil {
		t.Fatalf("getsockopt SO_REUSEPORT: %v", err)
	}
	return v != 0
}

// steeringOn reports whether the reuseport group of the socket pid holds
// bound to addr has a program (removing it: the test is over then).
func steeringOn(t *testing.T, pid int, addr string) bool {
	t.Helper()
	fd := socketOf(t, pid, addr)
	defer unix.Close(fd)
	err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DETACH_REUSEPORT_BPF, 0)
	if err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) { // none; no group
		t.Fatalf("setsockopt SO_DETACH_REUSEPORT_BPF: %v", err)
	}
	return err == nil
}

// socketOf returns a copy (pidfd_getfd) of the socket pid holds bound to
// the IPv4 address addr.
func socketOf(t *testing.T, pid int, addr string) int {
	t.Helper()
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatalf("pidfd_open %d: %v", pid, err)
	}
	defer unix.Close(pidfd)
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		link, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		fd, err := strconv.Atoi(e.Name())
		if !strings.HasPrefix(link, "socket:") || err != nil {
			continue
		}
		dup, err := unix.PidfdGetfd(pidfd, fd, 0)
		if err != nil {
			continue
		}
		sa, _ := unix.Getsockname(dup)
		if in4, ok := sa.(*unix.SockaddrInet4); ok && net.JoinHostPort(net.IP(in4.Addr[:]).String(), strconv.Itoa(in4.Port)) == addr {
			return dup
		}
		unix.Close(dup)
	}
	t.Fatalf("master %d holds no socket bound to %s", pid, addr)
	return -1
}

// modSlowStart delays a master that has detached (it leads its own
// session: apr_proc_detach's setsid, which the child itself does, so it
// holds however slowly the starter exits) in its post_config hook while
// the file SlowStartFile names exists: the master comes up, but writes
// its pidfile only seconds later.
const modSlowStart = `#include <unistd.h>
#include "httpd.h"
#include "http_config.h"

module AP_MODULE_DECLARE_DATA slowstart_module;

static const char *marker;

static const char *set_marker(cmd_parms *cmd, void *dummy, const char *arg)
{
    marker = arg;
    return NULL;
}

static int slow_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s)
{
    if (marker && getsid(0) == getpid() && access(marker, F_OK) == 0)
        sleep(3);
    return OK;
}

static const command_rec slow_cmds[] = {
    AP_INIT_TAKE1("SlowStartFile", set_marker, NULL, RSRC_CONF, "delay a detached master while this file exists"),
    {NULL}
};

static void slow_hooks(apr_pool_t *p)
{
    ap_hook_post_config(slow_post_config, NULL, NULL, APR_HOOK_MIDDLE);
}

module AP_MODULE_DECLARE_DATA slowstart_module = {
    STANDARD20_MODULE_STUFF, NULL, NULL, NULL, NULL, slow_cmds, slow_hooks
};
`

// TestOverlapRestartStartTimesOut: the new master is still coming up (it
// has not written its pidfile) when the start's --timeout passes, so the
// overlap is abandoned. That master is found and stopped anyway: one
// master, the old one, in the pidfile and serving.
func TestOverlapRestartStartTimesOut(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl", "apxs")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	marker := filepath.Join(t.TempDir(), "slow")
	so := buildModule(t, "slowstart", modSlowStart)
	srv := apachetest.Start(t, apachetest.Config{MPM: "prefork", SysvSem: true,
		Extra: fmt.Sprintf("LoadModule slowstart_module %s\nSlowStartFile %s", so, marker)})
	state := t.TempDir()
	old := srv.MasterPID()
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// --no-trial: the trial's master would be as slow (it detaches too)
	// and the restart refused, exit 3.
	code, out, errOut := runCLI(t, "restart", "apache2", "--conf", srv.ConfPath, "--state-dir", state, "--json", "--timeout", "1s", "--graceful-timeout", "0", "--no-trial")
	if code != exitFailed || !strings.Contains(errOut, "still serves") {
		t.Fatalf("overlap restart that times out: exit %d, want %d and the old master serving\n%s\n%s", code, exitFailed, out, errOut)
	}
	if srv.MasterPID() != old {
		t.Fatalf("the pidfile names %d, want the old master %d", srv.MasterPID(), old)
	}
	if masters := countMasters(t, srv); masters != 1 {
		t.Fatalf("%d masters after the abandoned overlap, want the old one only\n%s", masters, errOut)
	}
	if c, _, err := srv.Get("/"); err != nil || c != 200 {
		t.Fatalf("the old master stopped serving: %d, %v", c, err)
	}
}

// TestStartThenRestartOverlaps: a master that `safe-restart start` started
// has SO_REUSEPORT on its listeners (its sockets already form a reuseport
// group when the new master joins it); the first restart after it
// overlaps and steers too.
func TestStartThenRestartOverlaps(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := apachetest.Start(t, apachetest.Config{MPM: "event"})
	state := t.TempDir()
	for _, cmd := range []string{"stop", "start"} {
		if code, out, errOut := runCLI(t, cmd, "apache2", "--conf", srv.ConfPath, "--state-dir", state); code != exitOK {
			t.Fatalf("%s: exit %d\n%s\n%s", cmd, code, out, errOut)
		}
	}
	old := srv.MasterPID()
	code, rep, errOut := apacheRestartJSON(t, srv, state)
	if code != exitOK || !rep.Overlap || !rep.Steered || rep.Stop.Master == nil || rep.Stop.Master.PID != old {
		t.Fatalf("first restart after safe-restart start: exit %d, overlap %v (skipped: %q), stopped %+v (want %d)\n%s", code, rep.Overlap, rep.OverlapSkipped, rep.Stop.Master, old, errOut)
	}
}

// TestStartBesideStrangerOnPort: a socket of another program with
// SO_REUSEPORT on Apache's port would let Apache, started with
// SO_REUSEPORT, bind beside it and share the connections; a plain start
// would fail to bind. So the start fails, names the socket, and stops the
// master it started.
func TestStartBesideStrangerOnPort(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, 0xf /* SO_REUSEPORT */, 1) })
		return errors.Join(err, serr)
	}}
	stranger, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	srv := apachetest.Start(t, apachetest.Config{MPM: "event"})
	state := t.TempDir()
	if code, out, errOut := runCLI(t, "stop", "apache2", "--conf", srv.ConfPath, "--state-dir", state); code != exitOK {
		t.Fatalf("stop: exit %d\n%s\n%s", code, out, errOut)
	}
	conf := readFile(t, srv.ConfPath)
	writeConf(t, srv.ConfPath, conf+"\nListen "+stranger.Addr().String()+"\n")
	code, out, errOut := runCLI(t, "start", "apache2", "--conf", srv.ConfPath, "--state-dir", state)
	if code == exitOK || !strings.Contains(errOut, "another socket") || !strings.Contains(errOut, "the new master was stopped") {
		t.Fatalf("start beside a stranger's SO_REUSEPORT socket: exit %d; want a failure naming it\n%s\n%s", code, out, errOut)
	}
	if n := countMasters(t, srv); n != 0 {
		t.Fatalf("%d Apache masters after the refused start, want none", n)
	}
}
