package sock

import (
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/rs/zerolog"
)

// Held is a listening socket safe-restart holds through a restart.
type Held struct {
	Listener
	File *os.File
	// Family is "unix", "inet" or "inet6"; ip and port (inet*) and path
	// (unix) are the socket's own address (getsockname).
	Family string
	IP     net.IP
	Port   int
	Path   string
}

// FD returns the socket's descriptor in safe-restart.
func (s Held) FD() int { return int(s.File.Fd()) }

// link is a second hard link that keeps a unix socket's path
// restorable after the server unlinks it.
type link struct {
	Path, Spare string
	// Guarded says the spare is bind-mounted over the path: unlink(2) of
	// a mount point fails (EBUSY), so the old master cannot remove it.
	Guarded bool
}

// spareLink links the file of s, a unix socket bound to a path, to the
// spare name .NAME.safe-restart-PID in its directory, so that the path
// can be linked back after the server unlinks it. It returns false for
// a socket without a path, and when the path is not that socket file or
// the link fails (logged).
func spareLink(s Held, log zerolog.Logger) (link, bool) {
	if s.Family != "unix" || !strings.HasPrefix(s.Path, "/") {
		return link{}, false
	}
	if fi, err := os.Lstat(s.Path); err != nil || fi.Mode().Type() != fs.ModeSocket {
		log.Warn().Str("path", s.Path).Msg("the unix socket path is not a socket file now: left alone")
		return link{}, false
	}
	spare := filepath.Join(filepath.Dir(s.Path), "."+filepath.Base(s.Path)+spareInfix+strconv.Itoa(os.Getpid()))
	_ = os.Remove(spare) // a spare of ours an interrupted run left (the name has our pid)
	if err := os.Link(s.Path, spare); err != nil {
		log.Warn().Err(err).Str("path", s.Path).Msg("cannot keep a second link to the unix socket: clients may find no socket file until the new master starts")
		return link{}, false
	}
	return link{Path: s.Path, Spare: spare}, true
}

// relinkAll restores every unix socket path the old master unlinked and
// returns the paths it restored.
func relinkAll(links []link) []string {
	var out []string
	for _, l := range links {
		if relink(l) {
			out = append(out, l.Path)
		}
	}
	return out
}

// relink links the spare back to the socket's path when the path is
// gone; it reports whether it did.
func relink(l link) bool {
	if _, err := os.Lstat(l.Path); err == nil {
		return false
	}
	return os.Link(l.Spare, l.Path) == nil
}

// HeldListeners returns the sockets' listeners.
func HeldListeners(socks []Held) []Listener {
	out := make([]Listener, len(socks))
	for i, s := range socks {
		out[i] = s.Listener
	}
	return out
}

// SameMountView reports whether pid resolves paths as safe-restart does:
// the same mount namespace and root. The unix socket paths a master
// reports mean other files otherwise.
func SameMountView(procRoot string, pid int) bool {
	for _, name := range []string{"ns/mnt", "root"} {
		theirs, err1 := os.Readlink(filepath.Join(procRoot, strconv.Itoa(pid), name))
		ours, err2 := os.Readlink(filepath.Join(procRoot, "self", name))
		if err1 != nil || err2 != nil || theirs != ours {
			return false
		}
	}
	return true
}

// spareInfix names a socket's spare link: .NAME.safe-restart-PID.
const spareInfix = ".safe-restart-"
