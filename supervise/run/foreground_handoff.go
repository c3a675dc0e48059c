package run

import (
	"os"
	"slices"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/server"
	"github.com/safe-restart/safe-restart/supervise/sock"
)

// runHandoff keeps a foreground child's listening sockets open between
// its generations (safe-restart run), so that a crash restart, a health
// restart or a failed recycle refuses no connection: after every verified
// start and reload it takes the child's listeners that the run config
// names (pidfd_getfd, see sock.TakeListeners), and the next generation inherits
// them as fds 3, 4, ... (see server.Inheritor). Meanwhile the kernel queues the
// connections that arrive; the next generation serves them. A unix socket
// path keeps a spare link while its socket is held, and is linked back
// when the dead child unlinked it. Through a stop of run's own (a health
// restart, a failed recycle) a bind mount guards the path, as a restart's
// does: linking it back after php-fpm's unlink leaves a moment with no
// socket file, in which clients fail (ENOENT; seen under load). The mount
// is removed once the child exited; between stops nothing guards the path
// (nothing else starts a server on it while run supervises it), and a
// child that unlinks it as it exits on its own has it linked back then.
//
// Its zero value holds nothing and never inherits. The Run goroutine owns
// it.
type runHandoff struct {
	inh server.Inheritor // nil: no start inherits sockets
	// why says why nothing is held, for the next start's log line.
	why string
	// held are the sockets held and their spare links.
	held sock.HeldSet
	// unset are the variables the server reads inherited sockets from,
	// never passed on from safe-restart's own environment.
	unset []string
	// warned says a failed take was logged at Warn: later ones log at
	// Debug until a take works again.
	warned bool
	root   string
	log    zerolog.Logger
}

// newRunHandoff returns the handoff of a supervisor with options o:
// inactive without a profile, with --no-handoff, and for a server that
// cannot inherit sockets (Apache).
func newRunHandoff(o ForegroundOptions) *runHandoff {
	r := &runHandoff{root: o.ProcRoot, log: o.Log, held: sock.HeldSet{Log: o.Log}}
	if o.Profile == nil {
		return r // any command: its sockets are unknown, and nothing is logged
	}
	if inh, ok := o.Profile.Driver.(server.Inheritor); ok {
		// Never passed on from safe-restart's own environment, held
		// sockets or not: they would name fds the child does not have.
		r.unset = inh.InheritVars()
	}
	r.inh, r.why = server.InheritorOf(*o.Profile, o.NoHandoff)
	if r.inh != nil {
		r.why = "nothing held yet"
	}
	return r
}

// take holds master's listeners that listen names instead of those held
// so far, after generation gen's verified start or reload (the master may
// have gained or lost listeners: a held socket that no child listens on
// any more would queue clients forever). A take that fails releases what
// is held: the next start binds its own sockets, as without a handoff.
func (r *runHandoff) take(gen int, master ipcguard.Proc, listen []string) {
	if r == nil || r.inh == nil {
		return
	}
	socks, _, err := sock.TakeListeners(r.root, master, listen, zerolog.Nop())
	if err != nil {
		r.drop(gen, "cannot take the child's listening sockets: "+err.Error())
		r.logFailure(gen, err)
		return
	}
	r.warned = false
	r.apply(gen, diffHeld(r.held.Socks, socks))
	if len(socks) == 0 {
		r.why = "no listener of the child is in its configuration"
	}
}

// logFailure says, once until a take works again, that the restarts fall
// back to plain ones.
func (r *runHandoff) logFailure(gen int, err error) {
	ev := r.log.Debug()
	if !r.warned {
		ev, r.warned = r.log.Warn(), true
	}
	ev.Str("event", "handoff").Int("gen", gen).Err(err).
		Msg("cannot hold the child's listening sockets: its restarts are plain ones (connections are refused between the stop and the start)")
}

// heldChange is how a take changes the held sockets: next replaces them;
// closing are the copies no longer wanted (a held socket not taken again,
// a second copy of one still held); dropped and added are the sockets
// that leave and join the set.
type heldChange struct {
	next, closing, dropped, added []sock.Held
}

// diffHeld compares the held sockets with those just taken, by socket
// inode: a socket held already keeps its held copy (and its spare link).
func diffHeld(held, taken []sock.Held) heldChange {
	var c heldChange
	for _, t := range taken {
		switch i := slices.IndexFunc(held, sameSocket(t)); {
		case slices.ContainsFunc(c.next, sameSocket(t)):
			c.closing = append(c.closing, t) // the master holds it at two fds
		case i >= 0:
			c.next, c.closing = append(c.next, held[i]), append(c.closing, t)
		default:
			c.next, c.added = append(c.next, t), append(c.added, t)
		}
	}
	for _, h := range held {
		if !slices.ContainsFunc(taken, sameSocket(h)) {
			c.closing, c.dropped = append(c.closing, h), append(c.dropped, h)
		}
	}
	return c
}

// sameSocket matches the copies of s's socket.
func sameSocket(s sock.Held) func(sock.Held) bool {
	return func(o sock.Held) bool { return o.Inode == s.Inode }
}

// apply carries out c: it closes the copies no longer wanted, moves the
// spare links along, and logs the held listeners when they changed.
func (r *runHandoff) apply(gen int, c heldChange) {
	for _, s := range c.dropped {
		r.held.DropSpare(s)
	}
	for _, s := range c.closing {
		s.File.Close()
	}
	for _, s := range c.added {
		r.held.AddSpare(s)
	}
	r.held.Socks = c.next
	if len(c.added)+len(c.dropped) == 0 {
		return
	}
	r.log.Info().Str("event", "handoff").Int("gen", gen).Strs("listeners", sock.Addrs(r.held.Listeners())).
		Strs("dropped", sock.Addrs(sock.HeldListeners(c.dropped))).
		Msg("holding the child's listening sockets: the next start inherits them, and connections queue between the generations")
}

// forStart prepares generation n's start: it links back the socket paths
// the dead child unlinked, keeps only the held sockets that listen (the
// run config's listen addresses) still names, and returns them with the
// environment variables that name them (nil when the start binds its own
// sockets). It logs whether the start inherits sockets, and why not.
func (r *runHandoff) forStart(n int, listen []string) ([]*os.File, []string) {
	if r == nil || n == 1 {
		return nil, nil
	}
	r.settle()
	r.keepConfigured(n, listen)
	var env []string
	if len(r.held.Socks) > 0 {
		var err error
		if env, err = r.inh.InheritEnv(r.held.Socks); err != nil {
			r.drop(n, "cannot hand the sockets over: "+err.Error())
		}
	}
	if len(r.held.Socks) == 0 {
		r.logPlain(n)
		return nil, nil
	}
	files := make([]*os.File, len(r.held.Socks))
	for i, s := range r.held.Socks {
		files[i] = s.File
	}
	r.log.Info().Str("event", "handoff").Int("gen", n).Bool("inherit", true).Strs("listeners", sock.Addrs(r.held.Listeners())).
		Strs("env", env).Msg("the start inherits the held listening sockets")
	return files, env
}

// logPlain logs why generation n's start binds its own sockets (nothing
// for a command without a profile).
func (r *runHandoff) logPlain(n int) {
	ev := r.log.Warn()
	switch {
	case r.why == "":
		return
	case r.inh == nil:
		ev = r.log.Info() // the server cannot inherit, or the user said so
	}
	ev.Str("event", "handoff").Int("gen", n).Bool("inherit", false).Str("reason", r.why).
		Msg("the start binds its own sockets: connections were refused since the child stopped")
}

// keepConfigured drops the held sockets that listen no longer names (the
// configuration changed since they were taken): the new child would not
// use them, and they would queue clients forever.
func (r *runHandoff) keepConfigured(n int, listen []string) {
	var stale []sock.Held
	for _, s := range r.held.Socks {
		if !sock.ConfigListens(listen, s.Listener) {
			stale = append(stale, s)
		}
	}
	if len(stale) == 0 {
		return
	}
	kept := slices.DeleteFunc(slices.Clone(r.held.Socks), func(s sock.Held) bool { return slices.ContainsFunc(stale, sameSocket(s)) })
	r.apply(n, heldChange{next: kept, closing: stale, dropped: stale})
	if len(kept) == 0 {
		r.why = "no held listener is in the configuration any more"
	}
}

// env returns the environment of a child started with the held sockets:
// this process's, without the variables the server reads its inherited
// sockets from, and vars.
func (r *runHandoff) env(vars []string) []string {
	if r == nil {
		return os.Environ()
	}
	return append(proc.WithoutVars(os.Environ(), r.unset), vars...)
}

// protect keeps the held unix socket paths in place through a stop that a
// restart follows (php-fpm unlinks its socket as it exits): a bind mount
// where it can, else a link back the moment they are unlinked (see
// sock.HeldSet.ProtectPaths); settle ends it.
func (r *runHandoff) protect() {
	if r != nil {
		r.held.ProtectPaths()
	}
}

// settle ends what protect did and links back the held unix socket paths
// the dead child unlinked.
func (r *runHandoff) settle() {
	if r != nil {
		r.held.Settle()
	}
}

// drop closes the held sockets and removes their spare links, after a
// failed start or take; why says why the next start binds its own.
func (r *runHandoff) drop(gen int, why string) {
	if r == nil || r.inh == nil {
		return
	}
	if len(r.held.Socks) > 0 {
		r.log.Warn().Str("event", "handoff").Int("gen", gen).Strs("listeners", sock.Addrs(r.held.Listeners())).Str("reason", why).
			Msg("closed the held listening sockets: the next start binds its own")
	}
	r.release()
	r.why = why
}

// release closes the held sockets and removes their spare links, when
// run ends: clients are then refused, as without a handoff.
func (r *runHandoff) release() {
	if r == nil {
		return
	}
	r.held.Release()
}
