package run

import (
	"context"
	"errors"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/supervise"
	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/server"
)

// reload carries out a reload (HUP) or a recycle (the memory watchdog):
// with a profile, the config test and the proof that the new
// configuration runs (proveRuns), then the profile's reload signal
// (php-fpm USR2, Apache USR1, nginx HUP) verified as `safe-restart
// reload` verifies it; a reload that would be unsafe, or whose new
// generation is not verified while the master lives, becomes a restart.
// Without a profile a reload forwards HUP unverified and a recycle is a
// restart. It returns why a restart is due, "" when none is.
func (f *Foreground) reload(ctx context.Context, gen *Generation, r Request) (string, error) {
	ev := r.Action.String()
	if f.o.Profile == nil {
		if r.Action == ActRecycle {
			return "recycle (no profile: a restart): " + r.Reason, nil
		}
		err := proc.SignalProc(f.o.ProcRoot, gen.Master, syscall.SIGHUP)
		f.o.Log.Info().Str("event", ev).Int("gen", gen.N).Int("pid", gen.Master.PID).Str("reason", r.Reason).AnErr("error", err).
			Msg("forwarded SIGHUP (no --service: the reload is not verified)")
		return "", err
	}
	sig, rc, err := f.o.Profile.PrepareFor(ctx, f.o.Conf, true, f.o.Log)
	if err != nil {
		f.o.Log.Error().Str("event", ev).Int("gen", gen.N).Err(err).Msg(ev + " refused before acting: the child serves on with its configuration")
		return "", err
	}
	ro := supervise.ReloadOptions{Start: f.startOptions()}
	if _, err := ro.Start.ProveRuns(ctx, rc, gen.Master); err != nil {
		f.o.Log.Error().Str("event", ev).Int("gen", gen.N).Err(err).Msg(ev + " refused before acting: the child serves on with its configuration")
		return "", err
	}
	rep := supervise.ReloadReport{PthreadKeys: -1, OldChildren: []int{}, NewChildren: []int{}}
	why, err := ro.UnsafeReload(ctx, gen.Master, sig, rc, &rep)
	if err != nil {
		return "", err
	}
	if why != "" {
		return why + ": restarting instead", nil
	}
	withFigures(f.o.Log.Info().Str("event", ev).Int("gen", gen.N).Int("pid", gen.Master.PID).Str("reason", r.Reason), r.Memory).
		Msg(ev + ": sending the reload signal")
	err = ro.ReloadVerified(ctx, f.o.ProcRoot, rc, gen.Master, &rep)
	switch {
	case err == nil:
		f.handoff.take(gen.N, gen.Master, rc.Listen)
		withFigures(f.o.Log.Info().Str("event", ev).Int("gen", gen.N).Int("pid", gen.Master.PID).Str("signal", rep.Signal).
			Ints("old_children", rep.OldChildren).Ints("new_children", rep.NewChildren).Str("reason", r.Reason), r.Memory).
			Msg(ev + " verified: a new generation serves")
		return "", nil
	case errors.Is(err, server.ErrReloadRejected), rep.Signal == "", !proc.SameAlive(f.o.ProcRoot, gen.Master):
		// Rejected: the old configuration serves. Not sent: nothing
		// changed. The master died: its exit starts the restart policy.
		f.o.Log.Error().Str("event", ev).Int("gen", gen.N).Err(err).Msg(ev + " failed")
		return "", err
	}
	return ev + " not verified (" + err.Error() + ")", nil
}

// MemoryFigures are what the memory watchdog measured when it asked for
// a recycle.
type MemoryFigures struct {
	PSS       int64   // the tree's total PSS, bytes
	Max       int64   // --max-memory, bytes (0: none)
	Processes int     // processes measured
	SlopeMin  float64 // fitted growth, bytes per minute
	R2        float64 // fit of the growth line
	Samples   int
	Window    string
}

// withFigures adds the memory figures, if any, to a log event.
func withFigures(e *zerolog.Event, m *MemoryFigures) *zerolog.Event {
	if m == nil {
		return e
	}
	return e.Int64("pss_bytes", m.PSS).Int64("max_memory_bytes", m.Max).Int("processes", m.Processes).
		Float64("growth_bytes_per_min", m.SlopeMin).Float64("r2", m.R2).Int("samples", m.Samples).Str("window", m.Window)
}
