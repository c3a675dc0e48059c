package server

import (
	"strconv"
	"strings"
	"time"

	"github.com/safe-restart/safe-restart/ipcguard"
)

// LoadLogger is implemented by the kinds whose error log shows when the
// master last read its configuration: Apache's "resuming normal
// operations" and php-fpm's "fpm is running, pid N", both written once the
// configuration loaded.
type LoadLogger interface {
	// LoadedLogged returns the time of the last such line of master's in
	// log (verify.MasterLog), which it writes once it read its
	// configuration, and the resolution of the log's times (the moment is
	// before at+res). ok is false when the log shows none, or its time
	// format is not the default.
	LoadedLogged(log string, master ipcguard.Proc) (at time.Time, res time.Duration, ok bool)
}

// Drainer is implemented by the kinds whose old generation's workers say so
// in their process title, as nginx's "worker process is shutting down".
type Drainer interface {
	// Draining reports whether a child of the master with this command
	// line belongs to a generation that finishes its connections and ends.
	Draining(cmdline string) bool
}

// lastLogged returns the time of the last line of log for which match
// holds, read from the line's start with the layout between the brackets
// that open it (the servers' default formats); ok is false when no line
// matches or its time does not parse.
func lastLogged(log, layout string, match func(line string) bool) (time.Time, bool) {
	lines := strings.Split(log, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if !match(lines[i]) {
			continue
		}
		stamp, _, ok := strings.Cut(strings.TrimPrefix(lines[i], "["), "]")
		if !ok || !strings.HasPrefix(lines[i], "[") {
			return time.Time{}, false
		}
		t, err := time.ParseInLocation(layout, stamp, time.Local)
		return t, err == nil
	}
	return time.Time{}, false
}

// apacheLogTime is the time of Apache's default ErrorLogFormat
// (`[Sun Dec 06 23:14:00.123456 2026]`).
const apacheLogTime = "Mon Jan 02 15:04:05.000000 2006"

// LoadedLogged: the last "resuming normal operations" of master, which it
// writes after post_config, at start and after each restart.
func (apacheKind) LoadedLogged(log string, master ipcguard.Proc) (time.Time, time.Duration, bool) {
	mark := "[pid " + strconv.Itoa(master.PID) + ":"
	at, ok := lastLogged(log, apacheLogTime, func(line string) bool { return hasLine(line, mark, resumedMarks) })
	return at, time.Microsecond, ok
}

// fpmLogTime is the time of php-fpm's log lines (`[06-Dec-2026 23:14:00]`),
// to the second.
const fpmLogTime = "02-Jan-2006 15:04:05"

// LoadedLogged: the last "fpm is running, pid N" of master, written by a
// fresh start and by each re-executed master once it read its
// configuration, to the second.
func (fpmKind) LoadedLogged(log string, master ipcguard.Proc) (time.Time, time.Duration, bool) {
	at, ok := lastLogged(log, fpmLogTime, func(line string) bool {
		_, pid, found := strings.Cut(line, fpmRunning)
		return found && strings.TrimSpace(pid) == strconv.Itoa(master.PID)
	})
	return at, time.Second, ok
}

// Draining: nginx renames a worker it told to finish "nginx: worker process
// is shutting down".
func (nginxKind) Draining(cmdline string) bool {
	return strings.Contains(cmdline, "is shutting down")
}
