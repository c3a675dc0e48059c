package supervise

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/server"
	"github.com/safe-restart/safe-restart/supervise/sock"
)

// HandoffReport says whether a restart handed the listening sockets over.
type HandoffReport struct {
	// Held are the old master's listeners held through the stop and
	// passed to the new master.
	Held []sock.Listener `json:"held"`
	// Fallback says why the restart was a plain one (the sockets closed
	// with the old master: connections are refused until the new one
	// listens); "" when they were handed over.
	Fallback string `json:"fallback,omitempty"`
	// Relinked are unix socket paths the old master unlinked as it
	// exited, linked back to the held socket.
	Relinked []string `json:"relinked,omitempty"`
	// Guarded are unix socket paths bind-mounted over themselves through
	// the stop, so that the old master could not unlink them.
	Guarded []string `json:"guarded,omitempty"`
}

// handoff is the sockets a restart holds and how it hands them over.
type handoff struct {
	// master is the running master the sockets were taken from.
	master ipcguard.Proc
	socks  []sock.Held
	// left are the master's listeners the new configuration lacks: they
	// close with the old master (a new master started beside it could
	// not bind one the configuration names under another spelling).
	left    []sock.Listener
	env     []string
	unset   []string
	detach  string // the setsid binary that detaches the new master, or ""
	links   []sock.Link
	stopRel func() []string
	log     zerolog.Logger
}

// noMasterToHold begins the reason of a restart that found no master.
const noMasterToHold = "no running master to take the sockets from"

// errNoHandoff wraps the reasons a restart cannot hand its sockets over.
var errNoHandoff = errors.New("no socket handoff")

// holdListeners takes the running master's listening sockets for a
// restart to the run config rc. It returns nil and the reason when a
// handoff is impossible or pointless; the restart is then a plain one.
func holdListeners(st StartOptions, rc server.RunConfig) (*handoff, string) {
	inh, why := inheritorOf(st.Profile, st.NoHandoff)
	if inh == nil {
		return nil, why
	}
	root := cmp.Or(st.ProcRoot, "/proc")
	master, err := st.Profile.Master(root, rc)
	if err != nil {
		return nil, fmt.Sprintf("%s (%v)", noMasterToHold, err)
	}
	h := &handoff{master: master, unset: inh.InheritVars(), log: st.Log}
	if inh.StaysChild() {
		if h.detach, err = exec.LookPath("setsid"); err != nil {
			return nil, fmt.Sprintf("cannot detach the new master: %v", err)
		}
	}
	if h.socks, h.left, err = takeListeners(root, master, rc.Listen, st.Log); err != nil {
		return nil, err.Error()
	}
	if len(h.socks) == 0 {
		return nil, "no listener of the running master is in the new configuration"
	}
	if h.env, err = inh.InheritEnv(h.socks); err != nil {
		h.release()
		return nil, fmt.Sprintf("cannot hand the sockets over: %v", err)
	}
	if sock.SameMountView(root, master.PID) {
		h.keepPaths()
	} else {
		st.Log.Warn().Int("pid", master.PID).Msg("the master sees another file system (mount namespace or root): its unix socket paths are left alone")
	}
	return h, ""
}

// inheritorOf returns the profile's kind as a server.Inheritor, or nil and why
// its sockets are not handed over (noHandoff: the user said so).
func inheritorOf(p server.Profile, noHandoff bool) (server.Inheritor, string) {
	inh, ok := p.Driver.(server.Inheritor)
	switch {
	case noHandoff:
		return nil, "disabled (--no-handoff)"
	case !ok:
		return nil, p.Kind + " cannot take listening sockets from its starter"
	}
	return inh, ""
}

// takeListeners duplicates the master's listeners that the new
// configuration listens on (see configListens) into safe-restart; the
// others, returned as left, close with the old master.
func takeListeners(root string, master ipcguard.Proc, listen []string, log zerolog.Logger) (socks []sock.Held, left []sock.Listener, err error) {
	listening, err := sock.ReadListening(root)
	if err != nil {
		return nil, nil, err
	}
	var want []sock.Listener
	for _, l := range sock.ListenersOf(root, master.PID, listening) {
		if configListens(listen, l) {
			want = append(want, l)
		} else {
			log.Info().Str("listener", l.Addr).Msg("not in the new configuration: it closes with the old master")
			left = append(left, l)
		}
	}
	if len(want) == 0 {
		return nil, left, nil
	}
	if socks, err = sock.DupListeners(root, master, want); err != nil {
		return nil, nil, fmt.Errorf("%w: cannot take master %d's listeners: %w", errNoHandoff, master.PID, err)
	}
	return socks, left, nil
}

// configListens reports whether one of the configured listen addresses
// (nginx's and php-fpm's forms: "127.0.0.1:80", "[::1]:9000", "*:80", a
// bare port, a host name, a unix socket path) is the listener's.
func configListens(listen []string, l sock.Listener) bool {
	for _, c := range listen {
		for _, a := range listenCandidates(c) {
			if a == l.Addr {
				return true
			}
		}
	}
	return false
}

// listenCandidates returns the addresses, as sock.ReadListening writes them,
// that a configured listen address may be bound to.
func listenCandidates(c string) []string {
	if strings.HasPrefix(c, "/") || strings.HasPrefix(c, "@") {
		return []string{c}
	}
	if _, err := strconv.Atoi(c); err == nil {
		return []string{net.JoinHostPort("0.0.0.0", c), net.JoinHostPort("::", c)}
	}
	i := strings.LastIndex(c, ":")
	if i < 0 {
		return nil // nginx's "listen localhost" (port 80) and the like: not matched
	}
	host, port := strings.TrimSuffix(strings.TrimPrefix(c[:i], "["), "]"), c[i+1:]
	if host == "*" || host == "" {
		host = "0.0.0.0"
	}
	if ip := net.ParseIP(host); ip != nil {
		return []string{net.JoinHostPort(ip.String(), port)}
	}
	ips, _ := net.LookupIP(host)
	var out []string
	for _, ip := range ips {
		out = append(out, net.JoinHostPort(ip.String(), port))
	}
	return out
}

// keepPaths links each held unix socket's file to a spare name in its
// directory (see sock.SpareLink) and protects the paths through the stop (see
// protectPaths), so that clients find the socket until the new master
// serves.
func (h *handoff) keepPaths() {
	for _, s := range h.socks {
		if l, ok := sock.SpareLink(s, h.log); ok {
			h.links = append(h.links, l)
		}
	}
	h.protectPaths()
}

// protectPaths guards each held unix socket path with a bind mount of its
// spare link where it can (the master's unlink then fails), and otherwise
// links it back as soon as the master unlinks it (php-fpm always does on
// exit; nginx does for sockets it bound itself); settle undoes both.
func (h *handoff) protectPaths() {
	for i, l := range h.links {
		if l.Guarded {
			continue
		}
		if err := sock.GuardPath(l); err != nil {
			h.log.Info().Err(err).Str("path", l.Path).Msg("cannot guard the unix socket path with a bind mount: it is linked back when the master unlinks it")
			continue
		}
		h.links[i].Guarded = true
	}
	h.watchPaths()
}

// watchPaths starts linking back each held path that no bind mount
// guards the moment it is unlinked (see sock.WatchRelink); settle ends the
// watch. The link back comes a moment after the unlink: clients may find
// no socket file in between.
func (h *handoff) watchPaths() {
	var watched []sock.Link
	for _, l := range h.links {
		if !l.Guarded {
			watched = append(watched, l)
		}
	}
	if len(watched) == 0 || h.stopRel != nil {
		return
	}
	stop, err := sock.WatchRelink(watched)
	if err != nil {
		h.log.Warn().Err(err).Msg("cannot watch the unix socket paths: they are restored after the stop")
		return
	}
	h.stopRel = stop
}

// afterStop restores the socket paths the stopped master unlinked, and
// reports them.
func (h *handoff) afterStop(rep *HandoffReport) {
	for _, l := range h.links {
		if l.Guarded {
			rep.Guarded = append(rep.Guarded, l.Path)
		}
	}
	rep.Relinked = append(rep.Relinked, h.settle()...)
}

// settle ends the watch of watchPaths and the bind mounts of keepPaths,
// links back every held unix socket path the stopped master unlinked,
// and logs and returns those paths.
func (h *handoff) settle() []string {
	var restored []string
	if h.stopRel != nil {
		restored = h.stopRel()
		h.stopRel = nil
	}
	h.unguard()
	restored = append(restored, sock.RelinkAll(h.links)...)
	for _, p := range restored {
		h.log.Info().Str("path", p).Msg("the stopped master unlinked its unix socket: linked it back to the held socket")
	}
	return restored
}

// unguard removes the bind mounts of sock.GuardPath.
func (h *handoff) unguard() {
	for i, l := range h.links {
		if !l.Guarded {
			continue
		}
		if err := sock.UnguardPath(l); err != nil {
			h.log.Warn().Err(err).Str("path", l.Path).Msg("cannot remove the bind mount that guarded the unix socket path")
			continue
		}
		h.links[i].Guarded = false
	}
}

// release closes what the handoff holds: the new master has its own
// copies of the sockets (or the start failed), and removes the spare
// links.
func (h *handoff) release() {
	if h == nil {
		return
	}
	if h.stopRel != nil {
		h.stopRel()
	}
	h.unguard()
	for _, l := range h.links {
		_ = os.Remove(l.Spare)
	}
	for _, s := range h.socks {
		s.File.Close()
	}
}

// listeners returns the held listeners.
func (h *handoff) listeners() []sock.Listener { return sock.HeldListeners(h.socks) }

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
	cmd.Env = append(withoutVars(os.Environ(), h.unset), h.env...)
	for _, s := range h.socks {
		cmd.ExtraFiles = append(cmd.ExtraFiles, s.File)
	}
	h.log.Info().Strs("argv", argv).Strs("env", h.env).Msg("starting with the held sockets")
	runErr := cmd.Run()
	var buf bytes.Buffer
	if _, err := out.Seek(0, io.SeekStart); err == nil {
		_, _ = io.Copy(&buf, io.LimitReader(out, 1<<20))
	}
	return buf.String(), runErr
}

// withoutVars returns env without the variables named.
func withoutVars(env, names []string) []string {
	var out []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, n := range names {
			rest, numbered := strings.CutPrefix(name, n+"_") // FPM_SOCKETS_1 ...
			_, err := strconv.Atoi(rest)
			drop = drop || name == n || (numbered && err == nil)
		}
		if !drop {
			out = append(out, kv)
		}
	}
	return out
}
