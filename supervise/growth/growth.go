package growth

import (
	"fmt"
	"slices"
	"time"

	"github.com/safe-restart/safe-restart/ipcguard"
)

// KeyGrowth is how many pthread keys one master gained over the reloads
// seen between its samples.
type KeyGrowth struct {
	Reloads int    // reloads between the samples that could be compared
	Keys    int    // keys gained over those reloads
	From    Sample // the earliest sample compared
	To      Sample // the latest
}

// PerReload is the keys gained per reload.
func (g KeyGrowth) PerReload() float64 { return float64(g.Keys) / float64(g.Reloads) }

// FindKeyGrowth compares each pair of consecutive samples of master in which
// both counts are known and the reload count rose; a count that fell (the
// error log was rotated, and counting restarted) breaks the chain without
// losing the pairs before it. ok is false when no reload was observed.
func FindKeyGrowth(samples []Sample, master ipcguard.ProcKey) (KeyGrowth, bool) {
	var g KeyGrowth
	mine := ofMaster(samples, master)
	for i := 1; i < len(mine); i++ {
		a, b := mine[i-1], mine[i]
		if a.Reloads < 0 || b.Reloads <= a.Reloads || a.PthreadKeys < 0 || b.PthreadKeys < 0 {
			continue
		}
		if g.Reloads == 0 {
			g.From = a
		}
		g.Reloads += b.Reloads - a.Reloads
		g.Keys += b.PthreadKeys - a.PthreadKeys
		g.To = b
	}
	return g, g.Reloads > 0
}

// KeyRise is how many pthread keys one master gained between samples
// whose logged reload count did not rise: reloads the log does not show
// (a log level that hides them, a signal sent by hand) or a module that
// creates keys while serving.
type KeyRise struct {
	Keys    int           // net keys gained over those pairs of samples
	Elapsed time.Duration // the time those pairs span
	From    Sample        // the earliest sample compared
	To      Sample        // the latest
}

// PerDay is the keys gained per day.
func (r KeyRise) PerDay() float64 { return float64(r.Keys) / r.Elapsed.Hours() * 24 }

// FindKeyRise compares each pair of consecutive samples of master in which
// both key counts are known and the reload count did not rise (unknown on
// either side, unchanged, or fallen); the pairs where it rose are
// FindKeyGrowth's. ok is true when those pairs span some time and the keys
// rose over them.
func FindKeyRise(samples []Sample, master ipcguard.ProcKey) (KeyRise, bool) {
	var r KeyRise
	mine := ofMaster(samples, master)
	for i := 1; i < len(mine); i++ {
		a, b := mine[i-1], mine[i]
		if a.PthreadKeys < 0 || b.PthreadKeys < 0 || (a.Reloads >= 0 && b.Reloads > a.Reloads) || !b.Taken.After(a.Taken) {
			continue
		}
		if r.Elapsed == 0 {
			r.From = a
		}
		r.Keys += b.PthreadKeys - a.PthreadKeys
		r.Elapsed += b.Taken.Sub(a.Taken)
		r.To = b
	}
	return r, r.Elapsed > 0 && r.Keys > 0
}

// MemGrowth is the memory the long-lived workers of one pool gained over
// the samples of their master.
type MemGrowth struct {
	Pool    string
	Workers int     // workers present from the first sample to the last
	Series  []int64 // their summed PSS at each sample, KiB
	From    Sample  // the first sample
	To      Sample  // the last
	// Trend is the least-squares line through Series over the samples'
	// times (see Trend: the same fit GrowsSteadily judges run's window by).
	Trend Trend
	pids  []int // the workers
}

// Growth thresholds (FindMemGrowth): the workers' memory must rise by at
// least memGrowthMinKiB and memGrowthMinPct over at least
// memGrowthMinSamples samples, along a line (trendMinR2).
const (
	memGrowthMinKiB     = 4 << 10
	memGrowthMinPct     = 20
	memGrowthMinSamples = 3
)

// FindMemGrowth reports a pool of master whose workers' memory grows steadily:
// the workers seen in both the first and the last sample of master that
// hold any worker of the pool (the same processes, by pid and start time),
// their summed PSS at each sample in between, rising by the thresholds
// above along a straight line: the least-squares fit through the samples
// explains at least trendMinR2 of their variance, as run's memory watch
// asks of its window (GrowsSteadily), so that a worker that warmed up once
// (opcache, first requests) and stayed flat is not taken for a leak.
func FindMemGrowth(samples []Sample, master ipcguard.ProcKey, pool string) (MemGrowth, bool) {
	var mine []Sample
	for _, s := range ofMaster(samples, master) {
		if len(poolWorkers(s, pool)) > 0 {
			mine = append(mine, s)
		}
	}
	if len(mine) < memGrowthMinSamples {
		return MemGrowth{}, false
	}
	first, last := poolWorkers(mine[0], pool), poolWorkers(mine[len(mine)-1], pool)
	var common []ipcguard.ProcKey
	for k := range first {
		if _, ok := last[k]; ok {
			common = append(common, k)
		}
	}
	if len(common) == 0 {
		return MemGrowth{}, false
	}
	g := MemGrowth{Pool: pool, Workers: len(common), From: mine[0], To: mine[len(mine)-1]}
	for _, s := range mine {
		ws := poolWorkers(s, pool)
		var sum int64
		for _, k := range common {
			pss, ok := ws[k]
			if !ok {
				return MemGrowth{}, false // a worker missing from a sample: not comparable
			}
			sum += pss
		}
		g.Series = append(g.Series, sum)
	}
	for _, k := range common {
		g.pids = append(g.pids, k.PID)
	}
	points := make([]MemSample, len(mine))
	for i, s := range mine {
		points[i] = MemSample{At: s.Taken, PSS: g.Series[i] << 10, Procs: 1}
	}
	g.Trend = fitTrend(points)
	slices.Sort(g.pids)
	return g, g.steady()
}

// steady applies the thresholds to the series.
func (g MemGrowth) steady() bool {
	first, last := g.Series[0], g.Series[len(g.Series)-1]
	rise := last - first
	return rise >= memGrowthMinKiB && rise*100 >= first*memGrowthMinPct && g.Trend.Rise > 0 && g.Trend.R2 >= trendMinR2
}

// Evidence describes the growth in one line.
func (g MemGrowth) Evidence() string {
	return fmt.Sprintf("pool %s: workers %v held %s (PSS) at %s and %s at %s, over %d samples (KiB: %v)",
		g.Pool, g.pids, FormatKiB(g.Series[0]), g.From.Taken.Format(time.DateTime), FormatKiB(g.Series[len(g.Series)-1]),
		g.To.Taken.Format(time.DateTime), len(g.Series), g.Series)
}

// FormatKiB formats a size in KiB as MiB.
func FormatKiB(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/1024) }

// poolWorkers returns the PSS of the pool's workers in s, by process.
func poolWorkers(s Sample, pool string) map[ipcguard.ProcKey]int64 {
	out := map[ipcguard.ProcKey]int64{}
	for _, w := range s.Workers {
		if w.Pool == pool {
			out[w.Proc] = w.PSSKiB
		}
	}
	return out
}

// FormatBytes formats bytes as MiB, as FormatKiB formats KiB.
func FormatBytes(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
