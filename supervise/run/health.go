package run

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/safe-restart/safe-restart/supervise/sock"
	"github.com/safe-restart/safe-restart/supervise/verify"
)

// HealthWatch checks a serving child periodically and asks for a
// restart after Failures failures in a row: a master that lives but
// serves nothing (a php-fpm pool whose workers all hang, behind nginx)
// is down.
type HealthWatch struct {
	F        *Foreground
	Every    time.Duration // between checks; 0 means 10 s
	Failures int           // in a row before a restart; 0 means 3
	Timeout  time.Duration // of one check; 0 means 5 s
}

// Run checks until ctx is done; it returns ctx's error.
func (h HealthWatch) Run(ctx context.Context) error {
	every, limit, timeout := cmp.Or(h.Every, 10*time.Second), cmp.Or(h.Failures, 3), cmp.Or(h.Timeout, 5*time.Second)
	failures, gen := 0, 0
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		g := h.F.Current()
		if g == nil || !g.Serving {
			continue // starting, or between generations: the start verifies itself
		}
		if g.N != gen {
			failures, gen = 0, g.N
		}
		err := h.F.check(g, timeout)
		if err == nil {
			if failures > 0 {
				h.F.o.Log.Info().Int("gen", g.N).Int("failures", failures).Msg("health check passes again")
			}
			failures = 0
			continue
		}
		failures++
		h.F.o.Log.Warn().Str("event", "health").Int("gen", g.N).Int("failures", failures).Int("limit", limit).Err(err).Msg("health check failed")
		if failures < limit {
			continue
		}
		reason := fmt.Sprintf("health check failed %d times in a row: %v", failures, err)
		if err := h.F.Do(ctx, Request{Action: ActRestart, Gen: g.N, Reason: reason, Crash: true}); err != nil && ctx.Err() == nil {
			h.F.o.Log.Warn().Err(err).Msg("restart request not carried out")
		}
		failures = 0
	}
}

// check is one health check of g: with a profile the child's listeners
// accept and the health URL (default: GET / on a listener of a server that
// speaks HTTP) answers below 500; without one, the health URL answers.
func (f *Foreground) check(g *Generation, timeout time.Duration) error {
	if f.o.Profile == nil {
		if f.o.HealthURL == "" {
			return nil
		}
		return verify.HTTPGet(f.o.HealthURL, timeout)
	}
	listening, err := sock.ReadListening(f.o.ProcRoot)
	if err != nil {
		return err
	}
	return verify.CheckServes(sock.ListenersOf(f.o.ProcRoot, g.Master.PID, listening), f.o.HealthURL, f.o.Profile.Driver.SpeaksHTTP(), timeout)
}
