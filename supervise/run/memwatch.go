package run

import (
	"context"
	"fmt"
	"time"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/growth"
	"github.com/safe-restart/safe-restart/supervise/proc"
)

// MemoryWatch is the memory watchdog: it samples the total PSS of the
// child's process tree and asks for a graceful recycle (the profile's
// reload: php-fpm USR2, Apache USR1, nginx HUP; a restart without a
// profile) when the total is over Max, or when the PSS per process grew
// steadily over Window (see growth.GrowsSteadily: a pool forking workers as its
// load rises is no leak). PSS (proportional set size) counts each shared page
// once across the tree, so a pool of forked workers is not counted N
// times over.
type MemoryWatch struct {
	F      *Foreground
	Max    int64         // bytes; 0: no ceiling
	Window time.Duration // 0: no trend
	// MinGrowth is the fitted growth over Window that counts as a leak;
	// 0 means 10% of Max, or 64 MiB without Max.
	MinGrowth int64
	Every     time.Duration // between samples; 0 means Window/30, at least 1 s (5 s without Window)
	// measure sums a tree's PSS; nil means treePSS (tests set it).
	measure func(procRoot string, master ipcguard.Proc) (int64, int, error)
}

// recycleCooldown is how many samples the watchdog waits after asking for
// a recycle, for the new generation to settle, before judging again; a
// tree that stayed over Max through them is restarted (the recycle freed
// nothing: the master itself holds the memory). One that went under Max
// in between was freed by the recycle: over Max again, it is recycled
// again (a fast leak in the workers).
const recycleCooldown = 5

// Run samples until ctx is done; it returns ctx's error.
func (m MemoryWatch) Run(ctx context.Context) error {
	every := m.interval()
	tick := time.NewTicker(every)
	defer tick.Stop()
	var samples []growth.MemSample
	gen, cooldown, recycled := 0, 0, false
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		g := m.F.Current()
		if g == nil || !g.Serving {
			samples = nil
			continue
		}
		if g.N != gen {
			samples, gen, cooldown, recycled = nil, g.N, 0, false
		}
		pss, procs, err := m.treePSS(g.Master)
		if err != nil {
			m.F.o.Log.Warn().Err(err).Msg("cannot measure the child's memory")
			continue
		}
		samples = growth.TrimWindow(append(samples, growth.MemSample{At: time.Now(), PSS: pss, Procs: procs}), m.Window)
		if recycled && m.Max > 0 && pss <= m.Max {
			recycled = false // the recycle freed the memory
		}
		if cooldown > 0 {
			cooldown--
			if cooldown > 0 {
				continue
			}
		}
		req, ok := m.judge(samples, pss, procs, recycled)
		if !ok {
			recycled = false
			continue
		}
		req.Gen = g.N
		err = m.F.Do(ctx, req)
		if err != nil && ctx.Err() == nil {
			m.F.o.Log.Warn().Err(err).Str("action", req.Action.String()).Msg("memory watchdog request not carried out")
		}
		// Only a recycle that happened makes the next verdict over Max a
		// restart.
		samples, cooldown, recycled = nil, recycleCooldown, req.Action == ActRecycle && err == nil
	}
}

// treePSS measures master's tree (see treePSS).
func (m MemoryWatch) treePSS(master ipcguard.Proc) (int64, int, error) {
	if m.measure != nil {
		return m.measure(m.F.o.ProcRoot, master)
	}
	return proc.TreePSS(m.F.o.ProcRoot, master)
}

// interval is the sampling period.
func (m MemoryWatch) interval() time.Duration {
	if m.Every > 0 {
		return m.Every
	}
	if m.Window > 0 {
		return max(m.Window/30, time.Second)
	}
	return 5 * time.Second
}

// judge returns the request the samples call for, if any: a recycle over
// Max (a restart when the previous recycle left it over Max) or on a
// steady growth.
func (m MemoryWatch) judge(samples []growth.MemSample, pss int64, procs int, recycled bool) (Request, bool) {
	fig := &MemoryFigures{PSS: pss, Max: m.Max, Processes: procs, Samples: len(samples), Window: m.Window.String()}
	if m.Max > 0 && pss > m.Max {
		reason := fmt.Sprintf("the tree's PSS %s is over --max-memory %s", growth.FormatBytes(pss), growth.FormatBytes(m.Max))
		if recycled {
			return Request{Action: ActRestart, Reason: reason + " even after a recycle", Memory: fig, Crash: true}, true
		}
		return Request{Action: ActRecycle, Reason: reason, Memory: fig}, true
	}
	if m.Window <= 0 {
		return Request{}, false
	}
	tr, ok := growth.GrowsSteadily(samples, m.Window, m.minGrowth())
	if !ok {
		return Request{}, false
	}
	fig.SlopeMin, fig.R2 = tr.SlopePerMin, tr.R2
	reason := fmt.Sprintf("the tree's PSS per process grew steadily: by %s over its %d processes in %s (%s/min, R² %.2f), now %s",
		growth.FormatBytes(int64(tr.Rise)), procs, tr.Span.Round(time.Second), growth.FormatBytes(int64(tr.SlopePerMin)), tr.R2, growth.FormatBytes(pss))
	return Request{Action: ActRecycle, Reason: reason, Memory: fig}, true
}

// minGrowth is MinGrowth or its default.
func (m MemoryWatch) minGrowth() int64 {
	switch {
	case m.MinGrowth > 0:
		return m.MinGrowth
	case m.Max > 0:
		return m.Max / 10
	}
	return 64 << 20
}
