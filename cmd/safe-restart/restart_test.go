package main

import (
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/safe-restart/safe-restart/internal/apachetest"
	"github.com/safe-restart/safe-restart/internal/nstest"
	"github.com/safe-restart/safe-restart/internal/proctest"
)

// TestRestartApache: restarts replace the master and leave the number of
// semaphore sets unchanged; a bad config leaves the running master (same
// identity) serving, with exit 3.
func TestRestartApache(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := apachetest.Start(t, apachetest.Config{MPM: "prefork", SysvSem: true, AuthDigest: true, SSL: true})
	state := t.TempDir()
	sets := len(semIDs(t))
	masters := map[int]bool{srv.MasterPID(): true}
	for i := 0; i < 3; i++ {
		code, out, errOut := runCLI(t, "restart", "apache2", "--conf", srv.ConfPath, "--state-dir", state, "--graceful-timeout", "20s")
		if code != exitOK || !strings.Contains(out, "started apache2") {
			t.Fatalf("restart %d: exit %d\n%s\n%s", i+1, code, out, errOut)
		}
		if masters[srv.MasterPID()] {
			t.Fatalf("restart %d: master %d was not replaced", i+1, srv.MasterPID())
		}
		masters[srv.MasterPID()] = true
		if n := len(semIDs(t)); n != sets {
			t.Fatalf("restart %d: %d sets, want %d as before", i+1, n, sets)
		}
		if c, _, err := srv.GetTLS("/"); err != nil || c != 200 {
			t.Fatalf("restart %d: TLS GET: %d, %v", i+1, c, err)
		}
	}

	good, err := os.ReadFile(srv.ConfPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(srv.ConfPath, append(good, "\nNoSuchDirective on\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	master, err := proctest.Identify(srv.MasterPID())
	if err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI(t, "restart", "apache2", "--conf", srv.ConfPath, "--state-dir", state)
	if code != exitRefused || !strings.Contains(errOut, "NoSuchDirective") {
		t.Fatalf("restart with a bad config: exit %d, %s; want %d", code, errOut, exitRefused)
	}
	if !master.Alive() || srv.MasterPID() != master.PID {
		t.Fatal("a failed config test touched the running master")
	}
	if c, _, err := srv.Get("/"); err != nil || c != 200 {
		t.Fatalf("the old master stopped serving: %d, %v", c, err)
	}
}

// TestConcurrentRestarts: ten callers that overlap (cron, logrotate and a
// deploy) are serialised by the service lock: all succeed, one master
// serves at the end.
func TestConcurrentRestarts(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := apachetest.Start(t, apachetest.Config{MPM: "prefork", SysvSem: true})
	state := t.TempDir()
	const n = 10
	codes := make(chan string, n)
	for i := 0; i < n; i++ {
		go func() {
			code, _, errOut := runCLI(t, "restart", "apache2", "--conf", srv.ConfPath, "--state-dir", state, "--ladder", "TERM:10s,KILL:5s:all")
			codes <- strconv.Itoa(code) + " " + errOut
		}()
	}
	for i := 0; i < n; i++ {
		if got := <-codes; !strings.HasPrefix(got, "0 ") {
			t.Errorf("a concurrent restart failed: exit %s", got)
		}
	}
	if masters := countMasters(t, srv); masters != 1 {
		t.Errorf("%d masters after concurrent restarts, want 1", masters)
	}
	if c, _, err := srv.Get("/"); err != nil || c != 200 {
		t.Fatalf("GET after concurrent restarts: %d, %v", c, err)
	}
}

// TestRestartKilledMidway: safe-restart is SIGKILLed right after it sent
// the graceful stop, of a plain restart (--no-overlap) and of an overlap
// (the new master serving beside the old one, new connections steered to
// it); the next run converges to one healthy master.
func TestRestartKilledMidway(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	for _, c := range []struct {
		flags []string
		next  string // the command run after the kill
		says  []string
	}{
		{[]string{"--no-overlap"}, "restart", []string{"finishing the stop an interrupted safe-restart began"}},
		// The killed overlap had steered every connection to its new
		// master: the program is removed before the next new master joins.
		// The old master removed the pidfile, which named the new one, as
		// its graceful stop began: the killed run may not have put it back
		// (the test makes sure it did not).
		{nil, "restart", []string{"finishing the stop of an old master an interrupted restart left serving beside the new one",
			"removed the steering program an interrupted restart left",
			"restoring the pidfile of the new master an interrupted restart left serving"}},
		// A start finds the new master running: it only finishes the stop.
		{nil, "start", []string{"finishing the stop of an old master an interrupted restart left serving beside the new one",
			"restoring the pidfile of the new master an interrupted restart left serving", "already running"}},
	} {
		t.Run(strings.Join(append([]string{"restart"}, c.flags...), " ")+", then "+c.next, func(t *testing.T) {
			srv := apachetest.Start(t, apachetest.Config{MPM: "prefork", SysvSem: true, AuthDigest: true})
			state := t.TempDir()
			// A restart with no overlap stops at once unless a graceful stop
			// is asked for: this one is; and a client that has sent half a
			// request keeps a child of the old master working (Timeout 10)
			// until it hangs up, so that the kill lands in the middle of
			// the graceful stop.
			half, err := net.Dial("tcp", srv.Listen[0])
			if err != nil {
				t.Fatal(err)
			}
			defer half.Close()
			if _, err := io.WriteString(half, "GET / HTTP/1.1\r\n"); err != nil {
				t.Fatal(err)
			}
			killMidway(t, append([]string{"restart", "apache2", "--conf", srv.ConfPath, "--state-dir", state, "--graceful-timeout", "20s"}, c.flags...))
			// The half request keeps the old master alive until the next
			// run's stop ends its graceful wait, whatever the timing.
			if c.flags == nil {
				if err := os.Remove(srv.PidFile); err != nil && !errors.Is(err, os.ErrNotExist) {
					t.Fatal(err)
				}
			}
			args := []string{c.next, "apache2", "--conf", srv.ConfPath, "--state-dir", state}
			if c.next == "restart" {
				args = append(args, "--graceful-timeout", "20s")
			}
			code, out, errOut := runCLI(t, args...)
			half.Close()
			if code != exitOK {
				t.Fatalf("the run after a killed restart: exit %d\n%s\n%s", code, out, errOut)
			}
			for _, says := range c.says {
				if !strings.Contains(errOut, says) {
					t.Fatalf("the second run does not say %q:\n%s", says, errOut)
				}
			}
			for _, addr := range srv.Listen {
				if c.next == "restart" && steeringOn(t, srv.MasterPID(), addr) {
					t.Fatalf("a steering program is left on %s", addr)
				}
			}
			masters := countMasters(t, srv)
			if code, _, err := srv.Get("/"); masters != 1 || err != nil || code != 200 {
				t.Fatalf("after convergence: %d masters, GET %d, %v\n%s", masters, code, err, errOut)
			}
			// The masters safe-restart started lack the kit's token: the
			// kit's clean-up would not find them for the next case.
			if code, out, errOut := runCLI(t, "stop", "apache2", "--conf", srv.ConfPath, "--state-dir", state); code != exitOK {
				t.Fatalf("stop: exit %d\n%s\n%s", code, out, errOut)
			}
		})
	}
}

// selfCommand is safe-restart (this test binary, in its main mode) run
// with args and JSON logs as a process of its own, outside nstest's
// bookkeeping.
func selfCommand(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], append([]string{"--log-format", "json"}, args...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SAFE_RESTART_NSTEST") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, mainEnv+"=1")
	return cmd
}

// killMidway runs safe-restart with args and SIGKILLs it as soon as it
// logs that it sent a stop signal.
func killMidway(t *testing.T, args []string) {
	t.Helper()
	_, _, signalled := signalWhen(t, args, syscall.SIGKILL, func(lines []string) bool {
		return strings.Contains(lines[len(lines)-1], "sent signal, waiting for the tree to exit")
	})
	if !signalled {
		t.Fatalf("%v: safe-restart never reported its graceful-stop signal", args)
	}
}

// TestRestartCyclesUnderLoad: twenty restarts while a client keeps
// requesting leave the number of semaphore sets where it was (no leak per
// cycle) and a server that serves.
func TestRestartCyclesUnderLoad(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl")
	if testing.Short() && os.Getenv("CI") != "true" {
		t.Skip("20 restarts take about 25 s; run without -short")
	}
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := apachetest.Start(t, apachetest.Config{MPM: "prefork", SysvSem: true, AuthDigest: true, SSL: true})
	state := t.TempDir()
	sets := len(semIDs(t))
	stop := clientLoad(t, srv.Get)
	for i := 0; i < 20; i++ {
		if code, out, errOut := runCLI(t, "restart", "apache2", "--conf", srv.ConfPath, "--state-dir", state); code != exitOK {
			t.Fatalf("restart %d: exit %d\n%s\n%s", i+1, code, out, errOut)
		}
	}
	if n, _ := stop(); n == 0 {
		t.Error("the client was never served during the restarts")
	}
	if n := len(semIDs(t)); n != sets {
		t.Errorf("after 20 restarts: %d sets, want %d", n, sets)
	}
}

// TestRestartRefusesWithoutHeadroom: when even the sets the stop would free
// leave too few for a start, restart refuses before stopping (exit 3) and
// the server keeps serving.
func TestRestartRefusesWithoutHeadroom(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := apachetest.Start(t, apachetest.Config{MPM: "prefork", SysvSem: true})
	sets := len(semIDs(t))
	if err := os.WriteFile("/proc/sys/kernel/sem", []byte("32000 1024000000 500 "+strconv.Itoa(sets+5)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	master, err := proctest.Identify(srv.MasterPID())
	if err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI(t, "restart", "apache2", "--conf", srv.ConfPath, "--state-dir", t.TempDir())
	if code != exitRefused || !strings.Contains(errOut, "not enough IPC headroom") {
		t.Fatalf("exit %d, %s; want %d", code, errOut, exitRefused)
	}
	if !master.Alive() {
		t.Fatal("restart stopped a server it could not start again")
	}
	if c, _, err := srv.Get("/"); err != nil || c != 200 {
		t.Fatalf("GET after the refused restart: %d, %v", c, err)
	}
}
