//go:build linux

package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/safe-restart/safe-restart/internal/apachetest"
	"github.com/safe-restart/safe-restart/internal/nstest"
	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
)

// TestApacheStatusCountsReloads: on a real Apache, mod_status's config
// generation counts every graceful (USR1) and hard (HUP) restart of the
// master, so ReloadsFromStatus reads 0, then 2, then 3.
func TestApacheStatusCountsReloads(t *testing.T) {
	nstest.RequireBinaries(t, "apache2")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := apachetest.Start(t, apachetest.Config{MPM: "prefork", Status: true})
	master, err := proc.FromPIDFile("/proc", srv.PidFile, srv.Bin)
	if err != nil {
		t.Fatal(err)
	}
	count := func() int {
		t.Helper()
		page, err := fetchStatus(context.Background(), srv.StatusURL())
		if err != nil {
			t.Fatal(err)
		}
		n, err := apacheKind{}.ReloadsFromStatus(page, master, time.Now())
		if err != nil {
			t.Fatalf("%v\n%s", err, page)
		}
		return n
	}
	if n := count(); n != 0 {
		t.Fatalf("a fresh master: %d reloads, want 0", n)
	}
	srv.Graceful()
	srv.Graceful()
	if n := count(); n != 2 {
		t.Fatalf("after 2 gracefuls: %d reloads, want 2", n)
	}
	srv.Restart()
	if n := count(); n != 3 {
		t.Fatalf("after 2 gracefuls and a HUP: %d reloads, want 3", n)
	}
}

// TestReloadsFromStatusRefuses: a page without the generation, or whose
// server has been up longer than the master has lived (another server's),
// gives no count.
func TestReloadsFromStatusRefuses(t *testing.T) {
	now := time.Now()
	master := ipcguard.Proc{PID: 42, Start: now.Add(-time.Minute)}
	page := func(gen, up string) string {
		return strings.Join([]string{"127.0.0.1", "ServerVersion: Apache/2.4.71 (Debian)", "ServerMPM: prefork",
			"ParentServerConfigGeneration: " + gen, "ParentServerMPMGeneration: 0", "ServerUptimeSeconds: " + up, ""}, "\n")
	}
	if n, err := (apacheKind{}).ReloadsFromStatus(page("5", "60"), master, now); err != nil || n != 4 {
		t.Fatalf("generation 5, up as long as the master: %d, %v; want 4 reloads", n, err)
	}
	for _, tt := range []struct{ page, want string }{
		{"<html>It works!</html>", "no ParentServerConfigGeneration"},
		{page("0", "60"), "no ParentServerConfigGeneration"},
		{page("5", "x"), "no ServerUptimeSeconds"},
		{page("5", "3600"), "the page is another server's"},
	} {
		if _, err := (apacheKind{}).ReloadsFromStatus(tt.page, master, now); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: %v, want an error with %q", tt.page, err, tt.want)
		}
	}
}
