package doctor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/safe-restart/safe-restart/supervise"
	"github.com/safe-restart/safe-restart/supervise/server"
)

// logindConf is systemd-logind's effective RemoveIPC= (REFERENCE.md §3).
type logindConf struct {
	present   bool   // logind is installed, or configured, under the root
	removeIPC bool   // the effective value
	source    string // where it was set: "file:line", or the default
	notes     []string
}

// logindDropinDirs are where logind.conf.d drop-ins are read, highest
// priority first: a file name found in several directories is read from
// the first only, and all of them are applied in file name order after
// logind.conf (systemd.unit(5), "drop-in"; logind.conf(5)).
var logindDropinDirs = []string{"etc/systemd/logind.conf.d", "run/systemd/logind.conf.d",
	"usr/local/lib/systemd/logind.conf.d", "usr/lib/systemd/logind.conf.d", "lib/systemd/logind.conf.d"}

// logindBinaries are where systemd-logind is installed.
var logindBinaries = []string{"usr/lib/systemd/systemd-logind", "lib/systemd/systemd-logind"}

// readLogind reads logind.conf and its drop-ins under root: the last
// RemoveIPC= assignment in [Login] wins, and the default is yes (since
// systemd 212).
func readLogind(root string) logindConf {
	c := logindConf{removeIPC: true, source: "the default (RemoveIPC=yes since systemd 212)"}
	files := []string{filepath.Join(root, "etc/systemd/logind.conf")}
	files = append(files, logindDropins(root)...)
	for _, f := range files {
		err := c.apply(f)
		switch {
		case err == nil:
			c.present = true
		case !errors.Is(err, fs.ErrNotExist):
			c.notes = append(c.notes, err.Error())
		}
	}
	for _, b := range logindBinaries {
		_, err := os.Stat(filepath.Join(root, b))
		c.present = c.present || err == nil
	}
	return c
}

// logindDropins lists the drop-ins in application order.
func logindDropins(root string) []string {
	byName := map[string]string{}
	for _, d := range logindDropinDirs {
		matches, _ := filepath.Glob(filepath.Join(root, d, "*.conf"))
		for _, m := range matches {
			if _, seen := byName[filepath.Base(m)]; !seen {
				byName[filepath.Base(m)] = m
			}
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	slices.Sort(names)
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = byName[n]
	}
	return out
}

// apply reads one file's RemoveIPC= assignments in [Login].
//
//	[Login]
//	RemoveIPC=no
func (c *logindConf) apply(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	section := ""
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = line
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section != "[Login]" || strings.TrimSpace(k) != "RemoveIPC" {
			continue
		}
		b, ok := parseSystemdBool(strings.TrimSpace(v))
		if !ok {
			return fmt.Errorf("%s:%d: RemoveIPC=%s is not a boolean", path, n, v)
		}
		c.removeIPC, c.source = b, fmt.Sprintf("%s:%d: %s", path, n, line)
	}
	return sc.Err()
}

// parseSystemdBool parses systemd's booleans (parse_boolean).
func parseSystemdBool(v string) (bool, bool) {
	switch strings.ToLower(v) {
	case "1", "yes", "y", "true", "t", "on":
		return true, true
	case "0", "no", "n", "false", "f", "off":
		return false, true
	}
	return false, false
}

// systemUIDMax is the highest system uid (Debian's systemd.pc
// system_uid_max, login.defs SYS_UID_MAX): logind's RemoveIPC spares
// system users.
const systemUIDMax = 999

// removeIPCFindings reports Apache sysvsem mutexes owned by a User that is
// not a system user while logind removes such users' IPC at logout
// (REFERENCE.md §3): the live accept mutex vanishes, every child logs
// AH00144 and Apache exits.
func removeIPCFindings(ctx context.Context, p server.Profile, conf string, st supervise.Status, logind logindConf) []Finding {
	rc := st.Config
	if p.Kind != "apache" || !logind.present || !logind.removeIPC || rc.User.ID <= systemUIDMax {
		return nil
	}
	mutexes := sysvsemMutexes(ctx, p, conf, rc)
	if len(mutexes) == 0 {
		return nil
	}
	ev := []string{fmt.Sprintf("User %s is uid %d, above the system range (<= %d): logind cleans its IPC when its last session ends", rc.User.Name, rc.User.ID, systemUIDMax)}
	ev = append(ev, mutexes...)
	ev = append(ev, "RemoveIPC=yes: "+logind.source)
	var live []string
	for _, s := range st.IPC.Snapshot.Sem {
		if s.UID == rc.User.ID {
			live = append(live, fmt.Sprint(s.ID))
		}
	}
	if len(live) > 0 {
		ev = append(ev, fmt.Sprintf("semaphore sets owned by uid %d now: ids %s", rc.User.ID, strings.Join(live, ", ")))
	}
	return []Finding{{Check: "logind-removeipc", Service: st.Service, Severity: Critical,
		Summary:  fmt.Sprintf("logind removes uid %d's semaphores when that user logs out, including Apache's live mutexes: every child then fails with AH00144 and Apache exits", rc.User.ID),
		Evidence: ev,
		Fix: "use a mutex that is not SysV (`Mutex file:${APACHE_LOCK_DIR} default`, or pthread), or set RemoveIPC=no in /etc/systemd/logind.conf.d/*.conf, " +
			"or run Apache as a system user (uid <= 999)"}}
}

// sysvsemMutexes returns the DUMP_RUN_CFG lines of the mutexes that are
// SysV semaphores: mechanism=sysvsem, or "Mutex default" left at APR's
// default when this build's default is sysvsem (`-V` shows
// APR_USE_SYSVSEM_SERIALIZE; APR 1.7 on Linux defaults to pthread,
// REFERENCE.md §2). The mutexes "using_defaults" follow "Mutex default".
func sysvsemMutexes(ctx context.Context, p server.Profile, conf string, rc server.RunConfig) []string {
	var out []string
	for _, name := range sortedKeys(rc.Mutexes) {
		line := rc.Mutexes[name]
		switch {
		case strings.Contains(line, "mechanism=sysvsem"):
			out = append(out, fmt.Sprintf("Mutex %s: %s (apache2 -t -D DUMP_RUN_CFG)", name, line))
		case name == "default" && strings.Contains(line, "mechanism=default") && server.APRDefaultIsSysvsem(ctx, p, conf):
			out = append(out, fmt.Sprintf("Mutex %s: %s, and this APR's default is sysvsem (-V: APR_USE_SYSVSEM_SERIALIZE)", name, line))
		}
	}
	return out
}

// sortedKeys is m's keys in order.
func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
