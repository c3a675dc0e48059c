package ipcguard

import (
	"os"
	"testing"
	"time"

	"github.com/safe-restart/safe-restart/internal/semtest"
)

func TestMain(m *testing.M) {
	semtest.RunHelper()
	os.Exit(m.Run())
}

// waitFor polls cond every few milliseconds until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
