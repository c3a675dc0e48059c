package supervise

import (
	"fmt"
	"slices"
	"strings"
)

// Profile is what safe-restart knows about one kind of server.
type Profile struct {
	Name   string // service name, e.g. "apache2"
	Binary string // the server executable, e.g. /usr/sbin/apache2
	Conf   string // default main config file
	// Ctl, when set, runs the server's commands instead of Binary (Debian's
	// apache2ctl sources /etc/apache2/envvars and creates the run dirs).
	Ctl string
	// EnvVars, when set, is a shell file sourced before starting Binary
	// directly (Debian's apache2ctl start defers to systemctl when PID 1 is
	// systemd, which would start a different instance).
	EnvVars string
}

// profiles are the built-in profiles, by name.
var profiles = map[string]Profile{
	"apache2": {Name: "apache2", Binary: "/usr/sbin/apache2", Conf: "/etc/apache2/apache2.conf", Ctl: "/usr/sbin/apache2ctl",
		EnvVars: "/etc/apache2/envvars"},
	"httpd": {Name: "httpd", Binary: "/usr/sbin/httpd", Conf: "/etc/httpd/conf/httpd.conf"},
}

// LookupProfile returns the built-in profile called name.
func LookupProfile(name string) (Profile, error) {
	p, ok := profiles[name]
	if !ok {
		names := make([]string, 0, len(profiles))
		for n := range profiles {
			names = append(names, n)
		}
		slices.Sort(names)
		return Profile{}, fmt.Errorf("%w %q (known: %s)", ErrUnknownService, name, strings.Join(names, ", "))
	}
	return p, nil
}

// command returns argv for running the server with args against conf.
func (p Profile) command(conf string, args ...string) []string {
	bin := p.Binary
	if p.Ctl != "" {
		bin = p.Ctl
	}
	return append([]string{bin, "-f", conf}, args...)
}
