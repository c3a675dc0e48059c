package sock

import (
	"os"
	"slices"

	"github.com/rs/zerolog"
)

// HeldSet is the listening sockets safe-restart holds, through a restart or
// between the generations of a supervised child, with what keeps their unix
// socket paths: a spare link of each (spareLink), a bind mount that guards
// a path through a stop (guardPath), and a watch that links a path back the
// moment it is unlinked (watchRelink). Its zero value holds nothing; one
// goroutine owns it.
type HeldSet struct {
	Socks []Held
	links []link
	Log   zerolog.Logger
	// stopRel ends the watch of watchPaths and returns the paths it linked
	// back; nil while none runs.
	stopRel func() []string
}

// KeepPaths gives each held unix socket a spare link (see AddSpare) and
// protects the paths through the stop to come (see ProtectPaths), so
// that clients find the socket until the new master serves.
func (h *HeldSet) KeepPaths() {
	for _, s := range h.Socks {
		h.AddSpare(s)
	}
	h.ProtectPaths()
}

// AddSpare links s's unix socket file to a spare name in its directory
// (see spareLink), when s has a path and the link can be made.
func (h *HeldSet) AddSpare(s Held) {
	if l, ok := spareLink(s, h.Log); ok {
		h.links = append(h.links, l)
	}
}

// DropSpare removes the spare link of s's path, if it has one.
func (h *HeldSet) DropSpare(s Held) {
	h.links = slices.DeleteFunc(h.links, func(l link) bool {
		if l.Path != s.Path {
			return false
		}
		_ = os.Remove(l.Spare)
		return true
	})
}

// ProtectPaths guards each held unix socket path with a bind mount of its
// spare link where it can (the master's unlink then fails), and otherwise
// links it back as soon as the master unlinks it (php-fpm always does on
// exit; nginx does for sockets it bound itself); Settle undoes both.
func (h *HeldSet) ProtectPaths() {
	for i, l := range h.links {
		if l.Guarded {
			continue
		}
		if err := guardPath(l); err != nil {
			h.Log.Info().Err(err).Str("path", l.Path).Msg("cannot guard the unix socket path with a bind mount: it is linked back when the master unlinks it")
			continue
		}
		h.links[i].Guarded = true
	}
	h.watchPaths()
}

// watchPaths starts linking back each held path that no bind mount
// guards the moment it is unlinked (see watchRelink); Settle ends the
// watch. The link back comes a moment after the unlink: clients may find
// no socket file in between.
func (h *HeldSet) watchPaths() {
	var watched []link
	for _, l := range h.links {
		if !l.Guarded {
			watched = append(watched, l)
		}
	}
	if len(watched) == 0 || h.stopRel != nil {
		return
	}
	stop, err := watchRelink(watched)
	if err != nil {
		h.Log.Warn().Err(err).Msg("cannot watch the unix socket paths: they are restored after the stop")
		return
	}
	h.stopRel = stop
}

// Guarded returns the unix socket paths a bind mount guards now.
func (h *HeldSet) Guarded() []string {
	var out []string
	for _, l := range h.links {
		if l.Guarded {
			out = append(out, l.Path)
		}
	}
	return out
}

// Settle ends the watch and the bind mounts of ProtectPaths, links back
// every held unix socket path the stopped master unlinked, and logs and
// returns those paths.
func (h *HeldSet) Settle() []string {
	var restored []string
	if h.stopRel != nil {
		restored = h.stopRel()
		h.stopRel = nil
	}
	h.unguard()
	restored = append(restored, relinkAll(h.links)...)
	for _, p := range restored {
		h.Log.Info().Str("path", p).Msg("the stopped master unlinked its unix socket: linked it back to the held socket")
	}
	return restored
}

// unguard removes the bind mounts of guardPath.
func (h *HeldSet) unguard() {
	for i, l := range h.links {
		if !l.Guarded {
			continue
		}
		if err := unguardPath(l); err != nil {
			h.Log.Warn().Err(err).Str("path", l.Path).Msg("cannot remove the bind mount that guarded the unix socket path")
			continue
		}
		h.links[i].Guarded = false
	}
}

// Release closes the held sockets (the new master has its own copies, or
// nothing will use them), ends the watch and the bind mounts, removes the
// spare links, and leaves the set empty.
func (h *HeldSet) Release() {
	if h.stopRel != nil {
		h.stopRel()
	}
	h.unguard()
	for _, l := range h.links {
		_ = os.Remove(l.Spare)
	}
	for _, s := range h.Socks {
		s.File.Close()
	}
	h.Socks, h.links, h.stopRel = nil, nil, nil
}

// Listeners returns the held sockets' listeners.
func (h *HeldSet) Listeners() []Listener { return HeldListeners(h.Socks) }
