package supervise

import (
	"fmt"
	"strings"
	"testing"

	"github.com/safe-restart/safe-restart/supervise/systemd"
)

// TestUnitRisk: status names what in systemd's view is wrong, and says
// so apart when systemd could not be asked at all (doctor's findings:
// TestUnitFindings).
func TestUnitRisk(t *testing.T) {
	cantAsk := Status{Service: "apache2", UnitErr: fmt.Errorf("%w: systemctl show apache2.service: exit status 1", systemd.ErrServiceManager)}
	if why := cantAsk.UnitRisk(); !strings.Contains(why, "systemctl show") {
		t.Errorf("unitRisk with systemd unreadable = %q", why)
	}
	failed := Status{Service: "apache2", Unit: &systemd.Unit{Name: "apache2.service", Active: "failed", Sub: "failed"}}
	if why := failed.UnitRisk(); !strings.Contains(why, "failed") {
		t.Errorf("unitRisk with a failed unit = %q", why)
	}
	none := Status{Service: "apache2"}
	if why := none.UnitRisk(); why != "" {
		t.Errorf("unitRisk without a unit = %q", why)
	}
}
