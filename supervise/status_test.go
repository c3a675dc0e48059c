package supervise

import (
	"fmt"
	"strings"
	"testing"

	"github.com/safe-restart/safe-restart/supervise/sock"
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

// TestConfigured: a listener is the configuration's in every form nginx
// and php-fpm write a listen address (a bare port, "*:PORT", an address, a
// unix socket path), and any listener is when the config test names none.
func TestConfigured(t *testing.T) {
	for _, c := range []struct {
		addr   string
		listen []string
		want   bool
	}{
		{"0.0.0.0:80", []string{"80"}, true}, // nginx's "listen 80;", Debian's default site
		{"0.0.0.0:80", []string{"*:80"}, true},
		{"127.0.0.1:8080", []string{"127.0.0.1:8080"}, true},
		{"[::1]:9000", []string{"[::1]:9000"}, true},
		{"/run/php/php-fpm.sock", []string{"/run/php/php-fpm.sock"}, true},
		{"0.0.0.0:81", []string{"80"}, false},
		{"127.0.0.1:8080", []string{"127.0.0.2:8080"}, false},
		{"0.0.0.0:443", nil, true},
	} {
		if got := configured(sock.Listener{Addr: c.addr}, c.listen); got != c.want {
			t.Errorf("configured(%s, %q) = %v, want %v", c.addr, c.listen, got, c.want)
		}
	}
}
