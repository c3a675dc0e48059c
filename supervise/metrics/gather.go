package metrics

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise"
	"github.com/safe-restart/safe-restart/supervise/server"
)

// Options say what Gather reads.
type Options struct {
	Services []server.Profile // resolved by the caller (server.ResolveService)
	// Conf, HealthURL and StatusURL describe the one service named (see
	// the metrics command's flags); "" means the defaults.
	Conf, HealthURL, StatusURL string
	Timeout                    time.Duration // for each listener and the health check
	State                      supervise.StateDir
	Log                        zerolog.Logger // what could not be read, and why
}

// Gather reads the host's IPC usage, each service's status and every
// recorded last operation, and returns them with the number of facts that
// could not be read (each logged); the rest is still gathered.
func Gather(ctx context.Context, o Options) (Facts, int) {
	facts := Facts{Taken: time.Now()}
	failures := 0
	fail := func(err error, msg string) {
		failures++
		o.Log.Error().Err(err).Msg(msg)
	}
	if snap, err := ipcguard.Take(ctx, ipcguard.Source{}); err == nil {
		facts.IPC = &snap
	} else {
		fail(err, "IPC usage not read")
	}
	for _, p := range o.Services {
		sf := gatherService(ctx, o, p)
		if sf.Err != nil {
			fail(sf.Err, "status of "+p.Name+" not read")
		}
		facts.Services = append(facts.Services, sf)
	}
	ops, err := supervise.LoadLastOperations(o.State.LastOperations())
	if err != nil {
		fail(err, "last operations not read")
	}
	facts.LastOps = ops
	return facts, failures
}

// gatherService reads one service's status and whether it serves; the
// reloads come from --status-url when it answers for this master.
func gatherService(ctx context.Context, o Options, p server.Profile) ServiceFacts {
	st, err := supervise.ReadStatus(ctx, p, o.Conf, o.State.Lineages(), "")
	if err != nil {
		return ServiceFacts{Name: p.Name, Err: err}
	}
	if o.StatusURL != "" && st.Master != nil {
		if n, err := p.StatusReloads(ctx, o.StatusURL, *st.Master); err == nil {
			st.Reloads = n
		} else {
			o.Log.Warn().Err(err).Msg("counting reloads in the error log and its rotated files instead")
		}
	}
	sf := ServiceFacts{Name: p.Name, Status: &st, IPCJudged: st.IPC.Signature != nil}
	sf.ServeErr = st.Serves(p, o.HealthURL, o.Timeout)
	return sf
}
