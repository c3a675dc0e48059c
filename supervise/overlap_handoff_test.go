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
)

// TestHandoffOverlapBlocker: a handoff overlaps unless --no-overlap, or the
// old master has a listener the new configuration does not name as
// configListens reads it (the new master might bind it beside the old one
// and fail).
func TestHandoffOverlapBlocker(t *testing.T) {
	master := ipcguard.Proc{PID: 42}
	all := &handoff{master: master}
	left := &handoff{master: master, left: []Listener{{Addr: "127.0.0.1:80"}}}
	for _, c := range []struct {
		h         *handoff
		noOverlap bool
		want      string
	}{
		{all, false, ""},
		{all, true, "--no-overlap"},
		{left, false, "master 42 listens on 127.0.0.1:80"},
		{left, true, "--no-overlap"},
	} {
		got := handoffOverlapBlocker(c.h, StartOptions{NoOverlap: c.noOverlap})
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("left %v, --no-overlap %v: %q, want %q", c.h.left, c.noOverlap, got, c.want)
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
	s := StopOptions{Profile: Profile{Name: "nginx", Binary: "/usr/sbin/nginx"}, Log: zerolog.Nop()}
	writeFile := func(path, text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(aside, "4242\n")
	writeFile(pidFile, "4343\n") // the dead new master's
	err := abandonOverlap(context.Background(), s, root, old, aside, RunConfig{PidFile: pidFile}, nil, time.Now(), errors.New("boom"))
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
