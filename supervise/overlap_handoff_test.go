package supervise

import (
	"strings"
	"testing"

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
