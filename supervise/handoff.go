package supervise

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/server"
	"github.com/safe-restart/safe-restart/supervise/sock"
)

// handoff is the sockets a restart holds (sock.HeldSet) and how it hands
// them over.
type handoff struct {
	sock.HeldSet
	// master is the running master the sockets were taken from.
	master ipcguard.Proc
	// left are the master's listeners the new configuration lacks: they
	// close with the old master (a new master started beside it could
	// not bind one the configuration names under another spelling).
	left   []sock.Listener
	env    []string
	unset  []string
	detach string // the setsid binary that detaches the new master, or ""
}

// noMasterToHold begins the reason of a restart that found no master.
const noMasterToHold = "no running master to take the sockets from"

// holdListeners takes the listening sockets of p's running master (read
// in the /proc at root) for a restart to the run config rc. It returns nil
// and the reason when a handoff is impossible (noHandoff: the user said
// so) or pointless; the restart is then a plain one.
func holdListeners(root string, p server.Profile, noHandoff bool, rc server.RunConfig, log zerolog.Logger) (*handoff, string) {
	inh, why := server.InheritorOf(p, noHandoff)
	if inh == nil {
		return nil, why
	}
	master, err := p.Master(root, rc)
	if err != nil {
		return nil, fmt.Sprintf("%s (%v)", noMasterToHold, err)
	}
	h := &handoff{HeldSet: sock.HeldSet{Log: log}, master: master, unset: inh.InheritVars()}
	if inh.StaysChild() {
		if h.detach, err = exec.LookPath("setsid"); err != nil {
			return nil, fmt.Sprintf("cannot detach the new master: %v", err)
		}
	}
	if h.Socks, h.left, err = sock.TakeListeners(root, master, rc.Listen, log); err != nil {
		return nil, err.Error()
	}
	if len(h.Socks) == 0 {
		return nil, "no listener of the running master is in the new configuration"
	}
	if h.env, err = inh.InheritEnv(h.Socks); err != nil {
		h.release()
		return nil, fmt.Sprintf("cannot hand the sockets over: %v", err)
	}
	if sock.SameMountView(root, master.PID) {
		h.KeepPaths()
	} else {
		log.Warn().Int("pid", master.PID).Msg("the master sees another file system (mount namespace or root): its unix socket paths are left alone")
	}
	return h, ""
}

// afterStop restores the socket paths the stopped master unlinked, and
// reports them with those a bind mount guarded.
func (h *handoff) afterStop(rep *HandoffReport) {
	rep.Guarded = append(rep.Guarded, h.Guarded()...)
	rep.Relinked = append(rep.Relinked, h.Settle()...)
}

// release closes what the handoff holds (see sock.HeldSet.Release); a nil
// handoff holds nothing.
func (h *handoff) release() {
	if h != nil {
		h.Release()
	}
}

// run starts argv with the held sockets as fds 3, 4, ... and the
// environment that names them; a master that would stay safe-restart's
// child is started through `setsid -f`, which forks it into a new session
// and exits, so that it is re-parented like a daemon. The output goes to
// a file (a master that does not daemonize keeps it open), read once the
// starter returns.
func (h *handoff) run(ctx context.Context, argv []string) (string, error) {
	if h.detach != "" {
		argv = append([]string{h.detach, "-f"}, argv...)
	}
	out, err := os.CreateTemp("", "safe-restart-start-*.out")
	if err != nil {
		return "", fmt.Errorf("starter output file: %w", err)
	}
	defer out.Close()
	_ = os.Remove(out.Name()) // the master may keep it open: let it vanish with it
	cmd := proc.Command(ctx, argv)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(proc.WithoutVars(os.Environ(), h.unset), h.env...)
	for _, s := range h.Socks {
		cmd.ExtraFiles = append(cmd.ExtraFiles, s.File)
	}
	h.Log.Info().Strs("argv", argv).Strs("env", h.env).Msg("starting with the held sockets")
	runErr := cmd.Run()
	var buf bytes.Buffer
	if _, err := out.Seek(0, io.SeekStart); err == nil {
		_, _ = io.Copy(&buf, io.LimitReader(out, 1<<20))
	}
	return buf.String(), runErr
}
