package supervise

import (
	"os"
	"testing"

	"github.com/safe-restart/safe-restart/internal/proctest"
)

// TestMain lets this test binary play the helpers proctest.StartHelper
// starts.
func TestMain(m *testing.M) {
	proctest.RunHelper()
	os.Exit(m.Run())
}
