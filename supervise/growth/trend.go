package growth

import (
	"math"
	"time"
)

// MemSample is one measurement of a process tree's memory.
type MemSample struct {
	At    time.Time
	PSS   int64 // bytes, the whole tree's
	Procs int   // processes measured (0 reads as 1)
}

// perProc is the tree's mean PSS per process.
func (s MemSample) perProc() float64 { return float64(s.PSS) / float64(max(s.Procs, 1)) }

// Trend is the verdict on a window of samples: the least-squares line
// through their PSS per process, and how well it fits. The fit is per
// process so that a pool growing with its load (pm = dynamic forking
// workers) is no leak; the growth is then scaled to the tree's size in
// the last sample.
type Trend struct {
	Samples int
	Span    time.Duration
	// SlopePerMin is the fitted growth in bytes per minute, per process
	// times the processes of the last sample.
	SlopePerMin float64
	// Rise is the fitted growth over the span, in bytes, scaled the same.
	Rise float64
	// R2 is the coefficient of determination of the fit, 0 to 1: near 1
	// when memory grows along a straight line, low for noise, a single
	// spike, or a sawtooth (workers recycled by pm.max_requests).
	R2 float64
}

// Thresholds of a steady growth (see GrowsSteadily).
const (
	trendMinSamples = 6
	trendMinR2      = 0.8
	// trendMinCover is the share of the window the samples must span: a
	// trend is judged over the whole window, not its first seconds.
	trendMinCover = 0.9
)

// fitTrend fits a least-squares line to the samples' PSS per process
// (at least two samples, else the zero trend).
func fitTrend(samples []MemSample) Trend {
	n := len(samples)
	tr := Trend{Samples: n}
	if n < 2 {
		return tr
	}
	t0 := samples[0].At
	var sx, sy, sxx, sxy float64
	for _, s := range samples {
		x, y := s.At.Sub(t0).Seconds(), s.perProc()
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	fn := float64(n)
	den := fn*sxx - sx*sx
	tr.Span = samples[n-1].At.Sub(t0)
	if den <= 0 {
		return tr
	}
	slope := (fn*sxy - sx*sy) / den
	icept := (sy - slope*sx) / fn
	mean := sy / fn
	var ssRes, ssTot float64
	for _, s := range samples {
		x, y := s.At.Sub(t0).Seconds(), s.perProc()
		d := y - (icept + slope*x)
		ssRes += d * d
		ssTot += (y - mean) * (y - mean)
	}
	procs := float64(max(samples[n-1].Procs, 1))
	tr.SlopePerMin, tr.Rise = slope*60*procs, slope*tr.Span.Seconds()*procs
	if ssTot > 0 {
		tr.R2 = math.Max(0, 1-ssRes/ssTot)
	}
	return tr
}

// GrowsSteadily reports whether samples, covering window, show memory
// growing steadily, per process (see Trend): at least trendMinSamples samples spanning 90% of the
// window, a least-squares line through them rising by at least minRise
// bytes over the span, and the line explaining at least 80% of the
// variance (R² ≥ 0.8). The fit makes one outlier count little; R² keeps a
// sawtooth or a spike from reading as a leak; minRise keeps slow drift
// (caches filling) from it.
func GrowsSteadily(samples []MemSample, window time.Duration, minRise int64) (Trend, bool) {
	tr := fitTrend(samples)
	ok := tr.Samples >= trendMinSamples &&
		float64(tr.Span) >= trendMinCover*float64(window) &&
		tr.Rise >= float64(minRise) && tr.R2 >= trendMinR2
	return tr, ok
}

// TrimWindow drops the samples older than window before the last one.
func TrimWindow(samples []MemSample, window time.Duration) []MemSample {
	if len(samples) == 0 {
		return samples
	}
	cut := samples[len(samples)-1].At.Add(-window)
	i := 0
	for i < len(samples) && samples[i].At.Before(cut) {
		i++
	}
	return samples[i:]
}
