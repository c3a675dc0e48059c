package server

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
)

// ConfReporter is a kind whose master's command line says which
// configuration it was started with (see Profile.master).
type ConfReporter interface {
	// StartedConf returns the configuration file the command line argv
	// of a master names, false when it names none this can resolve.
	StartedConf(argv []string) (string, bool)
}

// Master returns the master the pidfile of rc names (FromPIDFile), proven
// to be this instance's: a master started with another configuration file
// (another instance of the same binary, Debian's apache2-NAME layout) is
// ErrForeignProcess, returned beside the error. A master whose command
// line names no configuration this can read passes.
func (p Profile) Master(root string, rc RunConfig) (ipcguard.Proc, error) {
	m, err := proc.FromPIDFile(root, rc.PidFile, p.Binary)
	if err != nil {
		return m, err
	}
	if other := p.StartedWith(root, m, rc); other != "" {
		return m, fmt.Errorf("%w: %s names pid %d, the master of another instance: it was started with %s, not %s",
			proc.ErrForeignProcess, rc.PidFile, m.PID, other, rc.Conf)
	}
	return m, nil
}

// StartedWith returns the configuration file master m's command line
// names when it is another file than rc's (another instance), "" when it
// is the same, or when the command line names none this can read.
func (p Profile) StartedWith(root string, m ipcguard.Proc, rc RunConfig) string {
	cr, ok := p.Driver.(ConfReporter)
	if !ok || rc.Conf == "" {
		return ""
	}
	argv := proc.Cmdline(root, m.PID)
	if argv == nil {
		return ""
	}
	started, ok := cr.StartedConf(argv)
	if !ok || maybeSamePath(started, rc.Conf) {
		return ""
	}
	return started
}

// maybeSamePath reports whether paths a and b name the same file, or
// cannot both be read (then nothing proves they differ).
func maybeSamePath(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	if err1 != nil || err2 != nil {
		return true
	}
	return os.SameFile(fa, fb)
}

// StartedConf reads Apache's -d SERVERROOT and -f FILE (a relative FILE is
// under SERVERROOT); without -f, the configuration is apache2.conf in the
// -d SERVERROOT (Debian's apache2ctl for an instance apache2-NAME). A
// master started with neither names none.
func (apacheKind) StartedConf(argv []string) (string, bool) {
	var root, file string
	for i := 1; i+1 < len(argv); i++ {
		switch argv[i] {
		case "-d":
			root = argv[i+1]
		case "-f":
			file = argv[i+1]
		}
	}
	switch {
	case file != "" && filepath.IsAbs(file):
		return file, true
	case root == "":
		return "", false
	case file != "":
		return filepath.Join(root, file), true
	}
	return filepath.Join(root, "apache2.conf"), true
}

// StartedConf reads the -c FILE of nginx's master title ("nginx: master
// process /usr/sbin/nginx -c /etc/nginx/nginx.conf"): an absolute FILE,
// since a relative one is under a prefix the title may not name.
func (nginxKind) StartedConf(argv []string) (string, bool) {
	f := strings.Fields(strings.Join(argv, " "))
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "-c" && filepath.IsAbs(f[i+1]) {
			return f[i+1], true
		}
	}
	return "", false
}

// StartedConf reads php-fpm's master title, "php-fpm: master process
// (/etc/php/8.2/fpm/php-fpm.conf)".
func (fpmKind) StartedConf(argv []string) (string, bool) {
	title := strings.Join(argv, " ")
	_, rest, ok := strings.Cut(title, "master process (")
	conf, _, closed := strings.Cut(rest, ")")
	if !ok || !closed || !filepath.IsAbs(conf) {
		return "", false
	}
	return conf, true
}
