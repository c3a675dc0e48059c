package supervise

import (
	"context"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/server"
	"github.com/safe-restart/safe-restart/supervise/verify"
)

// reloadCount returns how many times master has been reloaded and where
// the count comes from: the status page at StatusURL when it is set and
// answers for this master, else the reloads logged in its error log and
// the rotated ones since it started (-1 when the server does not log them).
func (o ReloadOptions) reloadCount(ctx context.Context, master ipcguard.Proc, rc server.RunConfig) (int, string) {
	k := o.Start.Profile.Driver
	if o.StatusURL != "" {
		n, err := server.StatusReloads(ctx, k, o.StatusURL, master)
		if err == nil {
			return n, "status page"
		}
		o.Start.Log.Warn().Err(err).Msg("counting reloads in the error log and its rotated files instead")
	}
	return k.ReloadsLogged(verify.MasterLog(rc.ServerRoot, rc.ErrorLog, master.Start), master), "error log"
}
