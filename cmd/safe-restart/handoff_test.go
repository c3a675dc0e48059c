package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/safe-restart/safe-restart/internal/fpmtest"
	"github.com/safe-restart/safe-restart/internal/nginxtest"
	"github.com/safe-restart/safe-restart/internal/nstest"
	"github.com/safe-restart/safe-restart/internal/proctest"
	"github.com/safe-restart/safe-restart/supervise"
	"github.com/safe-restart/safe-restart/supervise/sock"
)

// handoffRestarts is how many full restarts each handoff test runs under
// load.
const handoffRestarts = 3

// restartJSON runs `safe-restart restart SERVICE --json ARGS...` and
// returns its report; it fails the test unless the exit code is 0.
func restartJSON(t *testing.T, service string, args ...string) (supervise.RestartReport, string) {
	t.Helper()
	code, out, errOut := runCLI(t, append([]string{"restart", service, "--json"}, args...)...)
	if code != exitOK {
		t.Fatalf("restart %s: exit %d\n%s\n%s", service, code, out, errOut)
	}
	var rep supervise.RestartReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("restart %s --json: %v\n%s", service, err, out)
	}
	return rep, errOut
}

// checkDetached fails unless master is alive, is a new process (not old),
// and is not safe-restart's child: re-parented to this namespace's PID 1
// (the test process), as a daemon is.
func checkDetached(t *testing.T, master, old proctest.Proc, pidFileMaster int) {
	t.Helper()
	if master == old || old.Alive() {
		t.Fatalf("restart kept master %v (old alive %v)", master, old.Alive())
	}
	st, err := master.Stat()
	if err != nil {
		t.Fatalf("new master %v: %v", master, err)
	}
	if st.PPID != 1 || st.PID != pidFileMaster {
		t.Fatalf("new master %d: ppid %d (want 1: detached from safe-restart), pidfile names %d", st.PID, st.PPID, pidFileMaster)
	}
}

// checkHandedOver fails unless the restart handed n listeners over: the
// new master's listeners are the very sockets (same inodes) the old one
// had.
func checkHandedOver(t *testing.T, rep supervise.RestartReport, n int, errOut string) {
	t.Helper()
	if rep.Handoff == nil || rep.Handoff.Fallback != "" || len(rep.Handoff.Held) != n {
		t.Fatalf("handoff %+v: want %d listeners held, no fallback\n%s", rep.Handoff, n, errOut)
	}
	inodes := func(ls []sock.Listener) []uint64 {
		var out []uint64
		for _, l := range ls {
			out = append(out, l.Inode)
		}
		slices.Sort(out)
		return out
	}
	if held, now := inodes(rep.Handoff.Held), inodes(rep.Start.Listeners); !slices.Equal(held, now) {
		t.Fatalf("the new master listens on sockets %v, the held ones were %v: not inherited\n%s", now, held, errOut)
	}
}

// overlapArgs returns the extra flags of the i-th handoff restart of a
// test: every second one runs with --no-overlap, so that both ways of
// handing the sockets over run under the same load.
func overlapArgs(i int) []string {
	if i%2 == 1 {
		return []string{"--no-overlap"}
	}
	return nil
}

// checkOverlap fails unless the restart overlapped the generations, or
// (with --no-overlap) says it did not.
func checkOverlap(t *testing.T, rep supervise.RestartReport, args []string, errOut string) {
	t.Helper()
	if len(args) == 0 && (!rep.Overlap || rep.OverlapSkipped != "") {
		t.Fatalf("overlap %v (skipped: %q): want the new master started beside the old one\n%s", rep.Overlap, rep.OverlapSkipped, errOut)
	}
	if len(args) > 0 && (rep.Overlap || !strings.Contains(rep.OverlapSkipped, "--no-overlap")) {
		t.Fatalf("with %v: overlap %v (skipped: %q): want the old master stopped first, and why\n%s", args, rep.Overlap, rep.OverlapSkipped, errOut)
	}
}

// TestNginxRestartHandoff: under 24 clients opening new connections on the
// TCP and the unix listener, every full restart hands both sockets to a
// new master that is detached (ppid 1), named by the pidfile and verified,
// and no connection is refused and no request fails; the unix socket file
// stays in place. The new master starts beside the old one, or (every
// second restart, --no-overlap) after it stopped.
func TestNginxRestartHandoff(t *testing.T) {
	nstest.RequireBinaries(t, "nginx")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := nginxtest.Start(t, nginxtest.Options{UnixSocket: true, ErrorLogLevel: "notice"})
	conf := []string{"--conf", srv.ConfPath, "--state-dir", t.TempDir()}
	ok200 := func(get func(string) (int, string, error)) func() bool {
		return func() bool { c, body, err := get("/"); return err == nil && c == 200 && body == nginxtest.IndexBody }
	}
	stopTCP, stopUnix := load(t, 16, ok200(srv.Get)), load(t, 8, ok200(srv.GetUnix))
	for i := range handoffRestarts {
		old := nginxMaster(t, srv)
		rep, errOut := restartJSON(t, "nginx", append(conf, overlapArgs(i)...)...)
		checkHandedOver(t, rep, 2, errOut)
		checkOverlap(t, rep, overlapArgs(i), errOut)
		checkDetached(t, nginxMaster(t, srv), old, srv.MasterPID())
		if _, err := os.Stat(srv.Socket); err != nil {
			t.Fatalf("restart %d: the unix socket file: %v", i+1, err)
		}
	}
	tcpOK, tcpFailed := stopTCP()
	unixOK, unixFailed := stopUnix()
	if tcpFailed+unixFailed != 0 {
		t.Fatalf("during %d restarts: TCP %d ok %d failed, unix %d ok %d failed; want none failed\n%s",
			handoffRestarts, tcpOK, tcpFailed, unixOK, unixFailed, srv.ErrorLogText())
	}
	t.Logf("during %d restarts: TCP %d ok, unix %d ok, none failed", handoffRestarts, tcpOK, unixOK)
}

// TestNginxRestartNoHandoff: --no-handoff restarts plainly, says so in the
// report, and still leaves a verified new master; under load the gap
// between the old master closing its sockets and the new one binding them
// usually refuses connections (logged: how many is timing).
func TestNginxRestartNoHandoff(t *testing.T) {
	nstest.RequireBinaries(t, "nginx")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := nginxtest.Start(t, nginxtest.Options{})
	conf := []string{"--conf", srv.ConfPath, "--state-dir", t.TempDir(), "--no-handoff"}
	stop := load(t, 16, func() bool { c, _, err := srv.Get("/"); return err == nil && c == 200 })
	old := nginxMaster(t, srv)
	rep, errOut := restartJSON(t, "nginx", conf...)
	if rep.Handoff == nil || !strings.Contains(rep.Handoff.Fallback, "--no-handoff") || !strings.Contains(errOut, "plain restart, no socket handoff") {
		t.Fatalf("handoff %+v: want the fallback reported and logged\n%s", rep.Handoff, errOut)
	}
	m := nginxMaster(t, srv)
	if m == old || old.Alive() || rep.Start.Master == nil || rep.Start.Master.PID != m.PID {
		t.Fatalf("plain restart: master %v, old %v (alive %v), report %+v", m, old, old.Alive(), rep.Start.Master)
	}
	ok, failed := stop()
	t.Logf("plain restart under load: %d ok, %d failed", ok, failed)
}

// TestFPMRestartHandoff: php-fpm behind nginx, on TCP and on a unix
// socket: under 24 clients, every full restart of php-fpm hands its socket
// to a new, detached, verified master and no request fails (no 502); on
// the unix socket the path php-fpm unlinks as it exits is kept. The new
// master starts beside the old one, or (every second restart,
// --no-overlap) after it stopped.
func TestFPMRestartHandoff(t *testing.T) {
	nstest.RequireBinaries(t, fpmtest.Binary, "nginx")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	overTCPAndUnix(t, func(t *testing.T, name string, unix bool) {
		srv := fpmtest.Start(t, fpmtest.Config{Children: 4, Unix: unix})
		front := fpmFront(t, srv)
		state := t.TempDir()
		stop := load(t, 24, func() bool {
			c, body, err := front.Get("/index.php")
			return err == nil && c == 200 && strings.HasPrefix(body, "fpmtest ok")
		})
		for i := range handoffRestarts {
			old, err := srv.Master()
			if err != nil {
				t.Fatal(err)
			}
			rep, errOut := restartJSON(t, fpmService, append([]string{"--conf", srv.ConfPath, "--state-dir", state}, overlapArgs(i)...)...)
			checkHandedOver(t, rep, 1, errOut)
			checkOverlap(t, rep, overlapArgs(i), errOut)
			m, err := srv.Master()
			if err != nil {
				t.Fatalf("restart %d: %v", i+1, err)
			}
			checkDetached(t, m, old, srv.MasterPID())
			// As root in the test's namespaces the bind mount (opened
			// through O_PATH fds, never following a symlink) must work.
			if unix && (len(rep.Handoff.Guarded) != 1 || len(rep.Handoff.Relinked) != 0) {
				t.Fatalf("restart %d: relinked %v, guarded %v: want the socket path guarded by the bind mount\n%s", i+1, rep.Handoff.Relinked, rep.Handoff.Guarded, errOut)
			}
			if _, err := os.Stat(srv.Listen); unix && err != nil {
				t.Fatalf("restart %d: the unix socket file: %v", i+1, err)
			}
			mustServe(t, srv, "after a handoff restart")
		}
		ok, failed := stop()
		if failed != 0 {
			t.Fatalf("during %d restarts: %d ok, %d failed; want none failed\n%s\n%s", handoffRestarts, ok, failed, srv.ErrorLogText(), front.ErrorLogText())
		}
		if !strings.Contains(srv.ErrorLogText(), "using inherited socket fd=3") {
			t.Fatalf("php-fpm did not log the inherited socket:\n%s", srv.ErrorLogText())
		}
		t.Logf("during %d restarts over %s: %d ok, none failed", handoffRestarts, name, ok)
	})
}

// overTCPAndUnix runs body as the subtests "tcp" and "unix": php-fpm
// listening on a TCP port, then on a unix socket.
func overTCPAndUnix(t *testing.T, body func(t *testing.T, name string, unix bool)) {
	t.Helper()
	for _, unix := range []bool{false, true} {
		name := map[bool]string{false: "tcp", true: "unix"}[unix]
		t.Run(name, func(t *testing.T) { body(t, name, unix) })
	}
}

// fpmFront starts nginx in front of srv: it passes *.php to srv's
// listener, TCP or unix.
func fpmFront(t *testing.T, srv *fpmtest.Server) *nginxtest.Server {
	t.Helper()
	pass := srv.Listen
	if srv.Config.Unix {
		pass = "unix:" + srv.Listen
	}
	return nginxtest.Start(t, nginxtest.Options{FastCGIPass: pass, Root: srv.DocRoot})
}

// TestNginxOverlapNewMasterFails: a new master that dies beside the old
// one (its config adds a listener on a port another socket holds: nginx
// -t does not bind, so only the start finds out) is given up: the restart
// fails saying the old master still serves, and the old master, never
// stopped, serves on TCP and the unix socket, named by its pidfile, alone.
// With the config fixed, the next restart overlaps again.
func TestNginxOverlapNewMasterFails(t *testing.T) {
	nstest.RequireBinaries(t, "nginx")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := nginxtest.Start(t, nginxtest.Options{UnixSocket: true})
	conf := []string{"restart", "nginx", "--json", "--conf", srv.ConfPath, "--state-dir", t.TempDir(), "--timeout", "10s"}
	old := nginxMaster(t, srv)
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	good := readFile(t, srv.ConfPath)
	listen := "listen " + srv.Addr + ";"
	writeConf(t, srv.ConfPath, strings.Replace(good, listen, listen+"\n        listen "+held.Addr().String()+";", 1))

	// --no-trial: the bind check would refuse this change before acting
	// (TestNginxReload); this test is of a new master that fails beside the
	// old one anyway.
	code, out, errOut := runCLI(t, append(conf, "--no-trial")...)
	var rep supervise.RestartReport
	_ = json.Unmarshal([]byte(out), &rep)
	if code == exitOK || !rep.Overlap || !strings.Contains(errOut, "still serves") {
		t.Fatalf("restart whose new master cannot bind: exit %d, overlap %v; want a failure that leaves the old master\n%s\n%s", code, rep.Overlap, out, errOut)
	}
	if !old.Alive() || srv.MasterPID() != old.PID {
		t.Fatalf("old master %v alive %v, pidfile names %d: want the old master, untouched", old, old.Alive(), srv.MasterPID())
	}
	if n := len(srv.Processes()); n != 1+srv.Options.Workers {
		t.Fatalf("%d nginx processes after the failed overlap, want the old master and its %d workers", n, srv.Options.Workers)
	}
	if _, err := os.Stat(srv.PidFile + ".safe-restart-old"); err == nil {
		t.Fatalf("the old master's pidfile was left aside")
	}
	for name, get := range map[string]func(string) (int, string, error){"TCP": srv.Get, "unix": srv.GetUnix} {
		if c, _, err := get("/"); err != nil || c != 200 {
			t.Fatalf("GET / over %s after the failed overlap: %d, %v", name, c, err)
		}
	}

	writeConf(t, srv.ConfPath, good)
	code, out, errOut = runCLI(t, conf...)
	rep = supervise.RestartReport{}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != exitOK || !rep.Overlap || old.Alive() {
		t.Fatalf("restart with the config fixed: exit %d, overlap %v, old alive %v (%v)\n%s\n%s", code, rep.Overlap, old.Alive(), err, out, errOut)
	}
}

// TestNginxRestartHandoffDenied: when the kernel refuses pidfd_getfd
// (EPERM), the restart falls back to a plain stop-then-start: the report's
// handoff.fallback and the warning name the refusal, and a new master,
// detached and verified, replaces the old one, which has exited. The
// refusal is real: safe-restart runs as its own process under a seccomp
// filter that fails pidfd_getfd with EPERM, as Docker's default profile
// does in a container without CAP_SYS_PTRACE (see runCLIDenyingGetfd).
//
// (Credentials cannot do it: pidfd_getfd checks the caller's real ids,
// /proc/PID/fd its fs ids, but a safe-restart whose real gid differs from
// its fs gid, without CAP_SYS_PTRACE, cannot read /proc/PID of the master
// it starts either, which inherits that real gid: the start then fails.)
func TestNginxRestartHandoffDenied(t *testing.T) {
	nstest.RequireBinaries(t, "nginx")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := nginxtest.Start(t, nginxtest.Options{UnixSocket: true})
	old := nginxMaster(t, srv)
	code, out, errOut := runCLIDenyingGetfd(t, "restart", "nginx", "--json", "--conf", srv.ConfPath, "--state-dir", t.TempDir())
	var rep supervise.RestartReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != exitOK {
		t.Fatalf("restart with pidfd_getfd denied: exit %d (%v), want 0\n%s\n%s", code, err, out, errOut)
	}
	if rep.Handoff == nil || len(rep.Handoff.Held) != 0 || !strings.Contains(rep.Handoff.Fallback, "pidfd_getfd") ||
		!strings.Contains(rep.Handoff.Fallback, "not permitted") {
		t.Fatalf("handoff %+v: want no socket held and the pidfd_getfd refusal as the fallback's reason\n%s", rep.Handoff, errOut)
	}
	if !strings.Contains(errOut, "plain restart, no socket handoff") || !strings.Contains(errOut, "pidfd_getfd: operation not permitted") {
		t.Fatalf("the fallback and its reason were not logged:\n%s", errOut)
	}
	m := nginxMaster(t, srv)
	checkDetached(t, m, old, srv.MasterPID())
	if rep.Start.Master == nil || rep.Start.Master.PID != m.PID || len(rep.Start.Listeners) != 2 {
		t.Fatalf("report: master %+v, listeners %v; want the new master %d, verified on its 2 listeners", rep.Start.Master, rep.Start.Listeners, m.PID)
	}
	for name, get := range map[string]func(string) (int, string, error){"TCP": srv.Get, "unix": srv.GetUnix} {
		if c, body, err := get("/"); err != nil || c != 200 || body != nginxtest.IndexBody {
			t.Fatalf("GET / over %s after the plain restart: %d %q, %v", name, c, body, err)
		}
	}
	t.Logf("master %d replaced by %d, plainly: %s", old.PID, m.PID, rep.Handoff.Fallback)
}

// runCLIDenyingGetfd runs this test binary as safe-restart (mainEnv) with
// --log-format json and args, as runCLI runs a command line, but as a
// process of its own in which every pidfd_getfd(2) fails with EPERM (see
// denyGetfd), and returns its exit code, stdout and stderr. The filter is
// installed on an OS thread locked to a goroutine of its own, so that only
// the process forked from that thread inherits it (with everything it
// starts); the thread exits with the goroutine, never unlocked.
func runCLIDenyingGetfd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	requireStateDir(t, args)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, self, append([]string{"--log-format", "json"}, args...)...)
	cmd.Env = append(os.Environ(), mainEnv+"=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr, cmd.WaitDelay = &out, &errb, 5*time.Second
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := denyGetfd(); err != nil {
			done <- err
			return
		}
		done <- cmd.Run()
	}()
	err = <-done
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return exit.ExitCode(), out.String(), errb.String()
	case err != nil:
		t.Fatalf("run %v with pidfd_getfd denied: %v\n%s", args, err, errb.String())
	}
	return 0, out.String(), errb.String()
}

// denyGetfd installs, on the calling thread only, a seccomp filter that
// fails pidfd_getfd with EPERM and allows every other system call: the
// rule of Docker's default profile (moby profiles/seccomp/default.json
// allows pidfd_getfd only with CAP_SYS_PTRACE, and its default action is
// EPERM). The caller needs CAP_SYS_ADMIN (no no_new_privs is set).
func denyGetfd() error {
	arch := map[string]uint32{"amd64": unix.AUDIT_ARCH_X86_64, "arm64": unix.AUDIT_ARCH_AARCH64}[runtime.GOARCH]
	if arch == 0 {
		return fmt.Errorf("no seccomp audit arch known for %s", runtime.GOARCH)
	}
	// struct seccomp_data: nr at offset 0, arch at offset 4.
	filter := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 4},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: arch, Jf: 3},
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: unix.SYS_PIDFD_GETFD, Jf: 1},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if _, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&prog))); errno != 0 {
		return os.NewSyscallError("seccomp", errno)
	}
	return nil
}

// TestFPMOverlapNewWorkersDie: a new php-fpm master whose workers exit at
// once (apparmor_hat names no hat: the config test passes, every worker
// exits 70) is verified only by the old master's workers answering on the
// shared socket, so the overlap also requires a worker of the new master
// to take a connection; it never does, the new master is stopped, and the
// old one, never stopped, still serves, named by its pidfile.
func TestFPMOverlapNewWorkersDie(t *testing.T) {
	nstest.RequireBinaries(t, fpmtest.Binary)
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := fpmtest.Start(t, fpmtest.Config{})
	old, err := srv.Master()
	if err != nil {
		t.Fatal(err)
	}
	good := readFile(t, srv.ConfPath)
	writeConf(t, srv.ConfPath, good+"\napparmor_hat = safe-restart-test-no-such-hat\n")
	code, out, errOut := runCLI(t, "restart", fpmService, "--json", "--conf", srv.ConfPath, "--state-dir", t.TempDir(), "--timeout", "3s")
	var rep supervise.RestartReport
	_ = json.Unmarshal([]byte(out), &rep)
	if code == exitOK || !rep.Overlap || !strings.Contains(errOut, "still serves") || !strings.Contains(errOut, "generation took a connection") {
		t.Fatalf("restart whose new workers die: exit %d, overlap %v; want the overlap given up, the old master serving\n%s\n%s", code, rep.Overlap, out, errOut)
	}
	if !old.Alive() || srv.MasterPID() != old.PID {
		t.Fatalf("old master %v alive %v, pidfile names %d: want the old master, untouched", old, old.Alive(), srv.MasterPID())
	}
	mustServe(t, srv, "after the overlap was given up")
}

// TestFPMStartWorkersDie: a php-fpm whose workers exit at once is not
// "started and verified" because its master holds a socket the kernel
// accepts connections on: start fails, saying no worker took one. With a
// good config the same start succeeds.
func TestFPMStartWorkersDie(t *testing.T) {
	nstest.RequireBinaries(t, fpmtest.Binary)
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := fpmtest.Prepare(t, fpmtest.Config{Pool: "apparmor_hat = safe-restart-test-no-such-hat"})
	state := t.TempDir()
	code, out, errOut := runCLI(t, "start", fpmService, "--conf", srv.ConfPath, "--state-dir", state, "--timeout", "3s")
	if code == exitOK || !strings.Contains(errOut, "generation took a connection") {
		t.Fatalf("start whose workers die: exit %d; want a failed start that says no worker took a connection\n%s\n%s", code, out, errOut)
	}
	if code, out, errOut := runCLI(t, "stop", fpmService, "--conf", srv.ConfPath, "--state-dir", state); code != exitOK {
		t.Fatalf("stop: exit %d\n%s\n%s", code, out, errOut)
	}
	writeConf(t, srv.ConfPath, strings.Replace(readFile(t, srv.ConfPath), "apparmor_hat = safe-restart-test-no-such-hat", "", 1))
	if code, out, errOut := runCLI(t, "start", fpmService, "--conf", srv.ConfPath, "--state-dir", state); code != exitOK {
		t.Fatalf("start with a good config: exit %d\n%s\n%s", code, out, errOut)
	}
	mustServe(t, srv, "after the start")
}
