package server

import (
	"fmt"
	"os"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
)

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
