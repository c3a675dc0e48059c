package doctor

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/safe-restart/safe-restart/supervise"
	"github.com/safe-restart/safe-restart/supervise/growth"
	"github.com/safe-restart/safe-restart/supervise/proc"
)

// keyFindings reports the master's pthread keys (REFERENCE.md §7: a
// library that leaks a key per reload kills a master that maps libgomp in
// its 1024th): keys near the limit, and, for a server whose master lives
// through reloads (not php-fpm, whose reload re-executes it with a fresh
// table), keys gained per reload between the samples of this master, keys
// gained between samples with no reload counted (growth.FindKeyRise), and libgomp
// mapped while neither has been measured yet.
func keyFindings(st supervise.Status, history []growth.Sample, keepsMaster bool) []Finding {
	if st.Master == nil {
		return nil
	}
	m := *st.Master
	gomp := libgompMapped(proc.DefaultRoot, m.PID)
	var out []Finding
	if st.PthreadKeys >= proc.PthreadKeysMax-supervise.PthreadKeysMargin {
		out = append(out, Finding{Check: "pthread-keys", Service: st.Service, Severity: Critical,
			Summary:  fmt.Sprintf("master %d uses %d of %d pthread keys: its next reload may kill it", m.PID, st.PthreadKeys, proc.PthreadKeysMax),
			Evidence: append([]string{fmt.Sprintf("%d keys in use in glibc's __pthread_keys of pid %d", st.PthreadKeys, m.PID)}, gompEvidence(gomp)...),
			Fix:      fmt.Sprintf("`safe-restart restart %s` gives it a fresh key table; `safe-restart reload %s` restarts instead by itself when the keys run short", st.Service, st.Service)})
	}
	if !keepsMaster {
		return out
	}
	g, measured := growth.FindKeyGrowth(history, m.Key())
	r, rising := growth.FindKeyRise(history, m.Key())
	if measured && g.Keys > 0 {
		out = append(out, keyGrowthFinding(st, g, gomp))
	}
	if rising {
		out = append(out, keyRiseFinding(st, r, gomp))
	}
	if !measured && !rising && gomp != "" {
		out = append(out, Finding{Check: "libgomp", Service: st.Service, Severity: Warning,
			Summary: fmt.Sprintf("libgomp is mapped in master %d and its pthread keys per reload are not measured yet: a leak of one key per reload makes libgomp exit the master when the 1024 run out", m.PID),
			Evidence: append(gompEvidence(gomp), fmt.Sprintf("%d pthread keys in use now, %d reload(s) logged by this master; no two samples of it with a reload between",
				st.PthreadKeys, st.Reloads)),
			Fix: fmt.Sprintf("reload through `safe-restart reload %s` (it records the keys, and restarts instead when they run short), then run doctor again to measure the growth", st.Service)})
	}
	return out
}

// keyRiseFinding reports keys gained while no reload was counted, with
// the rate per day and the time left before the table runs out.
func keyRiseFinding(st supervise.Status, r growth.KeyRise, gomp string) Finding {
	left := proc.PthreadKeysMax - r.To.PthreadKeys
	perDay := r.PerDay()
	ev := []string{
		fmt.Sprintf("master %d: %d keys at %s (reloads logged: %s), %d keys at %s (reloads logged: %s)",
			r.To.Master.PID, r.From.PthreadKeys, r.From.Taken.Format(time.DateTime), reloadsText(r.From.Reloads),
			r.To.PthreadKeys, r.To.Taken.Format(time.DateTime), reloadsText(r.To.Reloads)),
		fmt.Sprintf("+%d keys in %s of samples between which the logged reload count did not rise: %.1f keys per day",
			r.Keys, roundDuration(r.Elapsed), perDay),
		fmt.Sprintf("%d of %d keys left: about %s at this rate", left, proc.PthreadKeysMax, daysText(float64(left)/perDay)),
	}
	sev := Warning
	if gomp != "" {
		sev = Critical
	}
	return Finding{Check: "pthread-keys-rising", Service: st.Service, Severity: sev,
		Summary: fmt.Sprintf("master %d gained %d pthread keys while no reload was counted (%.1f per day): reloads the log does not show, "+
			"or a module that creates keys while serving, leak them, and the load that finds none left fails inside the master", r.To.Master.PID, r.Keys, perDay),
		Evidence: append(ev, gompEvidence(gomp)...),
		Fix: fmt.Sprintf("reload only through `safe-restart reload %s` (it counts every reload, records the keys, and restarts instead when they run short), "+
			"with a log level that keeps the server's restart notices; find the module that leaks (compare with modules disabled)", st.Service)}
}

// reloadsText is a sample's reload count, "unknown" for -1.
func reloadsText(n int) string {
	if n < 0 {
		return "unknown"
	}
	return strconv.Itoa(n)
}

// daysText formats a time to come given in days: days from one day up,
// else hours, minutes or seconds.
func daysText(days float64) string {
	if days >= 1 {
		return fmt.Sprintf("%.1f days", days)
	}
	return roundDuration(time.Duration(days * 24 * float64(time.Hour))).String()
}

// roundDuration rounds d to the second, or to the millisecond below one.
func roundDuration(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Second)
}

// keyGrowthFinding reports keys gained per reload.
func keyGrowthFinding(st supervise.Status, g growth.KeyGrowth, gomp string) Finding {
	left := proc.PthreadKeysMax - g.To.PthreadKeys
	ev := []string{
		fmt.Sprintf("master %d: %d keys at %s after %d logged reload(s), %d keys at %s after %d",
			g.To.Master.PID, g.From.PthreadKeys, g.From.Taken.Format(time.DateTime), g.From.Reloads,
			g.To.PthreadKeys, g.To.Taken.Format(time.DateTime), g.To.Reloads),
		fmt.Sprintf("+%d keys over %d reloads: %.1f keys per reload", g.Keys, g.Reloads, g.PerReload()),
		fmt.Sprintf("%d of %d keys left: about %d more reloads", left, proc.PthreadKeysMax, int(math.Floor(float64(left)/g.PerReload()))),
	}
	sev := Warning
	if gomp != "" {
		sev = Critical
	}
	return Finding{Check: "pthread-keys-growth", Service: st.Service, Severity: sev,
		Summary:  fmt.Sprintf("master %d gains %.1f pthread keys per reload: a module leaks them, and the reload that finds none left fails inside the master", g.To.Master.PID, g.PerReload()),
		Evidence: append(ev, gompEvidence(gomp)...),
		Fix: fmt.Sprintf("find the module that leaks (compare reloads with modules disabled); meanwhile reload with `safe-restart reload %s --max-reloads N` "+
			"(N well below the reloads left), which restarts instead and resets the table", st.Service)}
}

func gompEvidence(gomp string) []string {
	if gomp == "" {
		return nil
	}
	return []string{"libgomp is mapped in the master (" + gomp + "): when pthread_key_create fails it prints " +
		"\"libgomp: could not create thread pool destructor.\" and exits the process"}
}

// libgompMapped returns the path of the libgomp that pid maps, "" when none.
//
//	7f2a1c000000-7f2a1c010000 r--p 00000000 fe:00 1234   /usr/lib/x86_64-linux-gnu/libgomp.so.1.0.0
func libgompMapped(procRoot string, pid int) string {
	f, err := os.Open(filepath.Join(procRoot, strconv.Itoa(pid), "maps"))
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 6 && strings.HasPrefix(filepath.Base(fields[5]), "libgomp.so") {
			return fields[5]
		}
	}
	return ""
}

// memoryFindings reports php-fpm pools that never recycle their workers
// (pm.max_requests = 0) while the workers' memory grows between samples
// of the master (growth.FindMemGrowth): the leak ends in fork() failures and the OOM
// killer.
func memoryFindings(st supervise.Status, history []growth.Sample) []Finding {
	if st.Master == nil {
		return nil
	}
	pools := make([]string, 0, len(st.Config.PoolMaxRequests))
	for pool, n := range st.Config.PoolMaxRequests {
		if n == 0 {
			pools = append(pools, pool)
		}
	}
	slices.Sort(pools)
	var out []Finding
	for _, pool := range pools {
		g, growing := growth.FindMemGrowth(history, st.Master.Key(), pool)
		if !growing {
			continue
		}
		out = append(out, Finding{Check: "fpm-memory-growth", Service: st.Service, Severity: Warning,
			Summary: fmt.Sprintf("pool %s never recycles its workers (pm.max_requests = 0) and their memory grows: %s -> %s", pool,
				growth.FormatKiB(g.Series[0]), growth.FormatKiB(g.Series[len(g.Series)-1])),
			Evidence: []string{"php-fpm -tt: [" + pool + "] pm.max_requests = 0", g.Evidence()},
			Fix: fmt.Sprintf("set pm.max_requests (e.g. 500) in pool %s so that workers are replaced before the leak exhausts memory, "+
				"then `safe-restart reload %s`; find the leak with the slow log or by disabling extensions", pool, st.Service)})
	}
	return out
}
