package supervise

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/server"
	"github.com/safe-restart/safe-restart/supervise/sock"
)

// TestHandoffOverlapBlocker: a handoff overlaps unless --no-overlap, or the
// old master has a listener the new configuration does not name as
// sock.ConfigListens reads it (the new master might bind it beside the old one
// and fail), or the host has no room for two generations (a proc root
// whose MemAvailable is less than the old tree's PSS).
func TestHandoffOverlapBlocker(t *testing.T) {
	master := ipcguard.Proc{PID: 42}
	all := &handoff{master: master}
	left := &handoff{master: master, left: []sock.Listener{{Addr: "127.0.0.1:80"}}}
	root := t.TempDir()
	for name, text := range map[string]string{
		"stat":            "cpu 0 0 0 0\nbtime 1700000000\n",
		"meminfo":         "MemTotal: 4000000 kB\nMemAvailable: 1000 kB\n",
		"42/smaps_rollup": "Rss: 60000 kB\nPss: 50000 kB\n",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	roomy := func(pss string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(root, "42/smaps_rollup"), []byte("Pss: "+pss+" kB\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		h         *handoff
		noOverlap bool
		pss       string
		want      string
	}{
		{all, false, "100", ""},
		{all, true, "100", "--no-overlap"},
		{left, false, "100", "master 42 listens on 127.0.0.1:80"},
		{left, true, "100", "--no-overlap"},
		{all, false, "50000", "no room for two generations at once"},
	} {
		roomy(c.pss)
		got := handoffOverlapBlocker(root, c.h, nil, StartOptions{NoOverlap: c.noOverlap, ProcRoot: root, Log: zerolog.Nop()})
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("left %v, --no-overlap %v, PSS %s kB: %q, want %q", c.h.left, c.noOverlap, c.pss, got, c.want)
		}
	}
}

// TestAbandonOverlapRestoresOverStalePIDFile: a new master that wrote its
// pidfile and died leaves a stale pidfile; abandoning the overlap puts
// the old master's pidfile back over it.
func TestAbandonOverlapRestoresOverStalePIDFile(t *testing.T) {
	root := t.TempDir() // an empty proc root: no process runs
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "nginx.pid")
	aside := pidFile + overlapAsideSuffix
	old := ipcguard.Proc{PID: 4242}
	s := StopOptions{Profile: server.Profile{Name: "nginx", Binary: "/usr/sbin/nginx"}, Log: zerolog.Nop()}
	writeFile := func(path, text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(aside, "4242\n")
	writeFile(pidFile, "4343\n") // the dead new master's
	err := abandonOverlap(context.Background(), s, root, old, aside, server.RunConfig{PidFile: pidFile}, nil, time.Now(), errors.New("boom"))
	if err == nil || !strings.Contains(err.Error(), "old master 4242 still serves") {
		t.Fatalf("abandon: %v, want the cause and the old master serving", err)
	}
	if data, _ := os.ReadFile(pidFile); string(data) != "4242\n" {
		t.Fatalf("pidfile holds %q, want the old master's", data)
	}
	if _, err := os.Stat(aside); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("aside: %v, want it moved back", err)
	}
}
