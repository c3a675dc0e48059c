package supervise

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/safe-restart/safe-restart/ipcguard"
)

// uptimeSlack absorbs the whole-second resolution of the master's start
// time and of ServerUptimeSeconds.
const uptimeSlack = 2 * time.Second

// reloadsFromStatus reads mod_status's machine-readable page (`?auto`,
// REFERENCE.md §6): the master's config generation is 1 at start and grows
// by one at every USR1 and HUP, so it has been reloaded
// ParentServerConfigGeneration − 1 times. The page is the master's only if
// its ServerUptimeSeconds (since the start or the last HUP) is not longer
// than the master has lived: a page of another server started earlier is
// refused. A child of the previous generation still answering reports one
// less, never more.
func (apacheKind) reloadsFromStatus(page string, master ipcguard.Proc, now time.Time) (int, error) {
	fields := statusFields(page)
	gen, err := strconv.Atoi(fields["ParentServerConfigGeneration"])
	if err != nil || gen < 1 {
		return 0, fmt.Errorf("no ParentServerConfigGeneration in the page (is it mod_status with ?auto?)")
	}
	up, err := strconv.ParseInt(fields["ServerUptimeSeconds"], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("no ServerUptimeSeconds in the page")
	}
	uptime := time.Duration(up) * time.Second
	if age := now.Sub(master.Start); uptime > age+uptimeSlack {
		return 0, fmt.Errorf("server up for %v, but master %d started %v ago: the page is another server's", uptime, master.PID, age.Round(time.Second))
	}
	return gen - 1, nil
}

// statusFields parses the "Key: value" lines of mod_status's ?auto page.
func statusFields(page string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(page, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}
