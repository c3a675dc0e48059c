package supervise

import (
	"context"
	"fmt"

	"github.com/safe-restart/safe-restart/ipcguard"
)

// RestartReport is what the stop and the start of a restart did.
type RestartReport struct {
	Stop  StopReport  `json:"stop"`
	Start StartReport `json:"start"`
}

// Restart runs the config test and an IPC headroom check first (failures
// return a *ConfigTestError or ErrHeadroom and leave the running server
// untouched), then Stop and Start with the run config that test read. s and st must name the same
// profile and config; st's are used.
func Restart(ctx context.Context, s StopOptions, st StartOptions) (RestartReport, error) {
	sig, rc, err := st.Profile.prepare(ctx, st.Conf, st.Log)
	if err != nil {
		return RestartReport{}, err
	}
	return restart(ctx, s, st, sig, rc)
}

// restart is Restart once the server's run config is known.
func restart(ctx context.Context, s StopOptions, st StartOptions, sig *ipcguard.Signature, rc RunConfig) (RestartReport, error) {
	var rep RestartReport
	var err error
	s = s.withServer(st)
	if err := restartHeadroom(ctx, st, sig); err != nil {
		return rep, err
	}
	if rep.Stop, err = s.stop(ctx, sig, rc); err != nil {
		return rep, err
	}
	st.stopped = true // the stop just stopped orphans and reaped
	rep.Start, err = st.start(ctx, sig, rc)
	return rep, err
}

// restartHeadroom refuses a restart whose start would find fewer than
// sysvSetsNeeded free semaphore sets even after the stop freed every set of
// the service (the stopped master's own, and those reaped as leaked), so
// that a restart never stops a server it cannot start again (DESIGN.md
// invariant 5).
func restartHeadroom(ctx context.Context, o StartOptions, sig *ipcguard.Signature) error {
	if sig == nil {
		return nil // the server creates no SysV IPC
	}
	r, err := ipcguard.Inspect(ctx, ipcguard.InspectOptions{Signature: sig, Source: ipcguard.Source{ProcRoot: o.ProcRoot}})
	if err != nil {
		return err
	}
	freeable := 0
	for _, j := range r.Judgements {
		if j.Kind == ipcguard.KindSem && j.Verdict != ipcguard.Foreign {
			freeable++
		}
	}
	free := r.Snapshot.SemSetsFree()
	if free+freeable < sysvSetsNeeded {
		return fmt.Errorf("%w: %d of %d semaphore sets in use; even after the stop frees the service's %d, a start would find %d free and may need %d (kernel.sem SEMMNI)",
			ErrHeadroom, r.Snapshot.Usage.SemSets, r.Snapshot.Limits.SEMMNI, freeable, free+freeable, sysvSetsNeeded)
	}
	return nil
}
