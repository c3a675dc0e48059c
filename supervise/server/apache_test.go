//go:build linux

package server

import (
	"context"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/internal/apachetest"
	"github.com/safe-restart/safe-restart/internal/nstest"
	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
)

// apacheTree identifies a running test server from its pidfile, as the
// stop command does, and records its tree.
func apacheTree(t *testing.T, srv *apachetest.Server) (ipcguard.Proc, []ipcguard.Proc) {
	t.Helper()
	master, err := proc.FromPIDFile("/proc", srv.PidFile, srv.Bin)
	if err != nil {
		t.Fatal(err)
	}
	procs, err := ipcguard.ReadProcTable("/proc")
	if err != nil {
		t.Fatal(err)
	}
	tree := proc.Descendants(procs, master, srv.Bin)
	if len(tree) < 2 {
		t.Fatalf("tree of master %d: %v, want the master and its children", master.PID, proc.PIDs(tree))
	}
	return master, tree
}

// TestApacheGracefulStop: WINCH stops a real Apache and its children in
// the first step, and Apache removes its own semaphore sets.
func TestApacheGracefulStop(t *testing.T) {
	nstest.RequireBinaries(t, "apache2")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := apachetest.Start(t, apachetest.Config{MPM: "prefork", SysvSem: true, AuthDigest: true})
	master, tree := apacheTree(t, srv)
	reports, err := ApacheLadder(20*time.Second).Run(context.Background(), proc.LadderRun{Master: master, Members: tree,
		Log: zerolog.New(zerolog.NewTestWriter(t))})
	if err != nil || len(reports) != 1 || len(reports[0].Survivors) != 0 {
		t.Fatalf("reports %+v, %v: want the WINCH step to stop the whole tree", reports, err)
	}
	sets, err := ipcguard.ReadSemTable("/proc")
	if err != nil || len(sets) != 0 {
		t.Fatalf("after a graceful stop: %d sets left (%v), want 0", len(sets), err)
	}
}

// TestApacheEventOrphansNeedKill: after kill -9 of an event master, its
// children ignore TERM; they are killed only after the TERM step's wait,
// and the report names them.
func TestApacheEventOrphansNeedKill(t *testing.T) {
	nstest.RequireBinaries(t, "apache2")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := apachetest.Start(t, apachetest.Config{MPM: "event", SysvSem: true})
	master, tree := apacheTree(t, srv)
	srv.KillMaster9()
	orphans := proc.PIDs(tree[1:])
	ladder := proc.Ladder{{Signal: syscall.SIGTERM, Wait: 500 * time.Millisecond, All: true}, {Signal: syscall.SIGKILL, Wait: 10 * time.Second, All: true}}
	reports, err := ladder.Run(context.Background(), proc.LadderRun{Master: master, Members: tree, Log: zerolog.New(zerolog.NewTestWriter(t))})
	if err != nil {
		t.Fatal(err)
	}
	if len(reports) != 2 || len(reports[1].Survivors) != 0 {
		t.Fatalf("reports %+v: want TERM then KILL, leaving none", reports)
	}
	slices.Sort(reports[0].Survivors)
	if !slices.Equal(reports[0].Survivors, orphans) || reports[0].Waited < 500*time.Millisecond {
		t.Fatalf("TERM step: survivors %v after %s, want the orphans %v after its full 500ms", reports[0].Survivors, reports[0].Waited, orphans)
	}
}

// TestFatalLines: a fatal code counts only as a message's own code, and
// never in a line about a client request (a client controls its URI).
func TestFatalLines(t *testing.T) {
	for line, want := range map[string]bool{
		"[Mon Nov 23 13:44:35 2026] [core:emerg] [pid 33:tid 33] (28)No space left on device: AH00023: Couldn't create the mpm-accept mutex": true,
		"[core:alert] [pid 31:tid 31] AH00050: Child 33 returned a Fatal error... Apache is exiting!":                                        true,
		"libgomp: could not create thread pool destructor.":                                                                                  true,
		"[core:error] [pid 9:tid 9] [client 127.0.0.1:4242] AH10244: invalid URI path (/x/../../AH00020)":                                    false,
		"[core:error] [pid 9:tid 9] [client 127.0.0.1:4242] AH00020: in a client line":                                                       false,
		"[php:warn] [pid 9:tid 9] my app says AH00023 happened":                                                                              false,
		"[mpm_prefork:notice] [pid 8:tid 8] AH00163: Apache/2.4.71 (Debian) configured -- resuming normal operations":                        false,
	} {
		if got := isFatal(line); got != want {
			t.Errorf("isFatal(%q) = %v, want %v", line, got, want)
		}
	}
}
