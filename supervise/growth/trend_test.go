package growth

import (
	"cmp"
	"math"
	"testing"
	"time"
)

// series builds samples one second apart from f(i).
func series(n int, f func(i int) float64) []MemSample {
	t0 := time.Unix(1_700_000_000, 0)
	out := make([]MemSample, n)
	for i := range out {
		out[i] = MemSample{At: t0.Add(time.Duration(i) * time.Second), PSS: int64(f(i))}
	}
	return out
}

// rampSeries builds samples one minute apart from f(i), the tree's PSS
// and its process count.
func rampSeries(n int, f func(i int) (float64, int)) []MemSample {
	t0 := time.Unix(1_700_000_000, 0)
	out := make([]MemSample, n)
	for i := range out {
		pss, procs := f(i)
		out[i] = MemSample{At: t0.Add(time.Duration(i) * time.Minute), PSS: int64(pss), Procs: procs}
	}
	return out
}

func TestGrowsSteadily(t *testing.T) {
	const mb = 1 << 20
	window := 60 * time.Second
	noise := func(i int) float64 { return float64((i*7919)%11-5) * 0.2 * mb } // deterministic, ±1 MiB
	tests := []struct {
		name    string
		samples []MemSample
		want    bool
		window  time.Duration // 0: 60 s
		minRise int64         // 0: 10 MiB
	}{
		{"linear leak", series(61, func(i int) float64 { return 100*mb + float64(i)*mb/2 }), true, 0, 0},
		{"leak with noise", series(61, func(i int) float64 { return 100*mb + float64(i)*mb/2 + noise(i) }), true, 0, 0},
		{"flat with noise", series(61, func(i int) float64 { return 100*mb + noise(i) }), false, 0, 0},
		{"too slow: 6 MiB over the window", series(61, func(i int) float64 { return 100*mb + float64(i)*mb/10 }), false, 0, 0},
		{"one spike at the end", series(61, func(i int) float64 {
			if i == 60 {
				return 400 * mb
			}
			return 100 * mb
		}), false, 0, 0},
		{"sawtooth (pm.max_requests recycling workers)", series(61, func(i int) float64 { return 100*mb + float64(i%15)*2*mb }), false, 0, 0},
		{"step up then flat", series(61, func(i int) float64 { return 100*mb + math.Min(float64(i), 5)*10*mb }), false, 0, 0},
		{"too short a span", series(20, func(i int) float64 { return 100*mb + float64(i)*mb }), false, 0, 0},
		{"too few samples", []MemSample{{At: time.Unix(0, 0), PSS: mb}, {At: time.Unix(60, 0), PSS: 100 * mb}}, false, 0, 0},
		// pm = dynamic under a rising load: 8 then up to 18 workers of
		// 30 MiB (one more every 3 minutes) beside a 20 MiB master, sampled
		// every minute with noise. The total rises 300 MiB along a line
		// (R² 0.99); no process grows.
		{"pool growing with its load", rampSeries(31, func(i int) (float64, int) {
			workers := 8 + i/3
			return 20*mb + float64(workers)*30*mb + 4*noise(i), workers + 1
		}), false, 30 * time.Minute, 64 * mb},
		// The same pool's workers each leaking 3 MiB a minute: a leak.
		{"pool growing and leaking", rampSeries(31, func(i int) (float64, int) {
			workers := 8 + i/3
			return 20*mb + float64(workers)*(30*mb+float64(i)*3*mb) + 4*noise(i), workers + 1
		}), true, 30 * time.Minute, 64 * mb},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, got := GrowsSteadily(tt.samples, cmp.Or(tt.window, window), cmp.Or(tt.minRise, 10*mb))
			if got != tt.want {
				t.Errorf("growsSteadily = %v (rise %.1f MiB, R² %.3f, %d samples over %s), want %v",
					got, tr.Rise/mb, tr.R2, tr.Samples, tr.Span, tt.want)
			}
		})
	}
}

func TestFitTrendExact(t *testing.T) {
	tr := fitTrend(series(11, func(i int) float64 { return 1000 + 60*float64(i) }))
	if math.Abs(tr.SlopePerMin-3600) > 1e-6 || math.Abs(tr.Rise-600) > 1e-6 || math.Abs(tr.R2-1) > 1e-9 || tr.Span != 10*time.Second {
		t.Errorf("fitTrend = %+v, want slope 3600/min, rise 600, R² 1 over 10s", tr)
	}
}

func TestTrimWindow(t *testing.T) {
	s := series(10, func(int) float64 { return 1 })
	if got := TrimWindow(s, 3*time.Second); len(got) != 4 || got[0].At != s[6].At {
		t.Errorf("trimWindow kept %d samples from %v, want the last 4", len(got), got[0].At)
	}
}
