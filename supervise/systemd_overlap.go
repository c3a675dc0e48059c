package supervise

import (
	"context"
	"errors"
	"strconv"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/server"
)

// unitOverlap is a restart of the unit's own master (its MainPID) with no
// moment without a listener (see replaceBeside): the new master starts
// beside the old one, in the unit's control group and the old master's
// mount namespace (PrivateTmp=), and when the old master exits, systemd
// takes the new one for the unit's main process from the unit's PID file
// (service.c: a forking service may move to a new PID if it updates its
// PID file before the old one exits, which the old master's stop sees
// to). A server with its own binary upgrade (server.Upgrader: nginx) starts the
// new master itself, as the old one's child (upgradeBeside). A unit
// without that PIDFile= gets it for the restart only (systemd.Unit.SetPIDFile), removed
// once systemd follows the new master. It reports handled false, having
// changed nothing, when no overlap can work here: the caller then runs the
// unit's restart job.
func unitOverlap(ctx context.Context, s StopOptions, st StartOptions, sig *ipcguard.Signature, rc server.RunConfig, old ipcguard.Proc) (RestartReport, bool, error) {
	k, upgrades := st.Profile.Driver.(server.Upgrader)
	if _, ok := st.Profile.Driver.(server.Overlapper); !ok && !upgrades {
		return RestartReport{}, false, nil // php-fpm: the unit's restart job
	}
	root := proc.RootOr(st.ProcRoot)
	st.intoUnit = true
	b, why := planUnitOverlap(root, old, sig, st, upgrades)
	if why != "" {
		st.Log.Info().Str("unit", st.unit.Name).Str("reason", why).Msg("no overlap in the unit: its restart job replaces the master")
		return RestartReport{OverlapSkipped: why}, false, nil
	}
	added, err := st.unit.SetPIDFile(ctx, rc.PidFile, st.Log)
	if err != nil {
		b.undoLogged()
		st.Log.Warn().Err(err).Str("unit", st.unit.Name).Msg("cannot give the unit a PID file, so systemd could not follow a new master: no overlap")
		return RestartReport{OverlapSkipped: err.Error()}, false, nil
	}
	s.unit = nil // the old master's stop never queues a stop of the unit: the new master is in it
	var rep RestartReport
	handled := true
	if upgrades {
		handled, err = upgradeBeside(ctx, s, st, sig, rc, old, k, &rep)
	} else {
		err = replaceBeside(ctx, s, st, sig, rc, old, b, &rep)
	}
	if handled && err == nil {
		master := *rep.Start.Master
		err = st.unit.CheckServes(ctx, root, master, st.tree(root, master))
	}
	if added && (!handled || err == nil || rep.Stop.Master == nil) {
		// systemd follows the new master, or the old one's stop never
		// began: the unit is given back as it was; its MainPID stays.
		err = errors.Join(err, st.unit.UnsetPIDFile(ctx, st.Log))
	}
	if !handled {
		return RestartReport{OverlapSkipped: "master " + strconv.Itoa(old.PID) + " did not act on " + proc.SigName(k.UpgradeSignal())}, false, err
	}
	return rep, true, err
}

// planUnitOverlap says why no overlap in the unit can replace old, "" when
// one can; b holds the old sockets for a new master beside them (see
// planOverlap), nil for a binary upgrade (upgrades), which needs only the
// room for two generations.
func planUnitOverlap(root string, old ipcguard.Proc, sig *ipcguard.Signature, st StartOptions, upgrades bool) (b *beside, why string) {
	switch why = st.unit.OverlapBlocker(root, old); {
	case why != "":
		return nil, why
	case !upgrades:
		return planOverlap(root, old, sig, st)
	case st.NoOverlap:
		return nil, overlapDisabled
	}
	return nil, overlapBlocker(root, old, sig, st)
}
