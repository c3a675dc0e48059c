package supervise

import (
	"os"
	"testing"

	"github.com/safe-restart/safe-restart/internal/proctest"
	"github.com/safe-restart/safe-restart/supervise/server"
)

// TestMain lets this test binary play the helpers proctest.StartHelper
// starts.
func TestMain(m *testing.M) {
	proctest.RunHelper()
	os.Exit(m.Run())
}

// apacheProfile is the built-in apache2 profile.
func apacheProfile(t *testing.T) server.Profile {
	t.Helper()
	p, err := server.LookupProfile("apache2")
	if err != nil {
		t.Fatal(err)
	}
	return p
}
