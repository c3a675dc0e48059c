//go:build linux

package supervise

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/internal/apachetest"
	"github.com/safe-restart/safe-restart/internal/nstest"
	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/server"
	"github.com/safe-restart/safe-restart/supervise/sock"
)

// TestSoleListener: a socket on one of the master's addresses that is not
// the master's fails; the master's own, and other addresses, do not.
func TestSoleListener(t *testing.T) {
	own := []sock.Listener{{Addr: "127.0.0.1:80", Inode: 1}, {Addr: "127.0.0.1:443", Inode: 2}}
	if err := soleListener(own, map[uint64]string{1: "127.0.0.1:80", 2: "127.0.0.1:443", 3: "127.0.0.1:8080"}); err != nil {
		t.Fatalf("only the master's sockets on its addresses: %v", err)
	}
	err := soleListener(own, map[uint64]string{1: "127.0.0.1:80", 2: "127.0.0.1:443", 4: "127.0.0.1:443"})
	if err == nil || !strings.Contains(err.Error(), "(inode 4) listens on 127.0.0.1:443") {
		t.Fatalf("a stranger on 127.0.0.1:443: %v", err)
	}
}

// TestEnsurePIDFile: a missing pidfile is written with the pid; an
// existing one is left as it is.
func TestEnsurePIDFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "apache2.pid")
	if err := ensurePIDFile(path, 42); err != nil {
		t.Fatal(err)
	}
	if err := ensurePIDFile(path, 43); err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(path); err != nil || string(data) != "42\n" {
		t.Fatalf("pidfile %q, %v; want 42", data, err)
	}
}

// TestRestartStopsMasterLeftBeside: a stop intent names a live master
// other than the pidfile's (a restart killed between the start of the new
// master and the stop of the old one): the next restart stops it too.
func TestRestartStopsMasterLeftBeside(t *testing.T) {
	nstest.RequireBinaries(t, "apache2")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := apachetest.Start(t, apachetest.Config{MPM: "prefork"})
	left := apachetest.Start(t, apachetest.Config{MPM: "prefork"})
	leftMaster, err := proc.FromPIDFile("/proc", left.PidFile, left.Bin)
	if err != nil {
		t.Fatal(err)
	}
	p, err := server.LookupProfile("apache2")
	if err != nil {
		t.Fatal(err)
	}
	p.Binary = srv.Bin
	state := t.TempDir()
	if err := saveIntent(state, p.Name, leftMaster, nil); err != nil {
		t.Fatal(err)
	}
	log := zerolog.New(zerolog.NewTestWriter(t))
	_, err = Restart(context.Background(), StopOptions{Profile: p, Ladder: server.ApacheLadder(20 * time.Second), IntentDir: state, Log: log},
		StartOptions{Profile: p, Conf: srv.ConfPath, IntentDir: state, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if proc.SameAlive("/proc", leftMaster) {
		t.Fatalf("master %d, named by the stop intent, still runs", leftMaster.PID)
	}
	if c, _, err := srv.Get("/"); err != nil || c != 200 {
		t.Fatalf("the restarted server: %d, %v", c, err)
	}
}
