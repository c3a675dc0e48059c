package sock

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// RemoveStaleSockets removes those of paths that are unix socket files no
// process listens on (see staleSocket), logging each with its proof, and
// returns the paths removed. Anything else (no file, another kind of file,
// a socket that accepts or whose state is unproven) is left alone.
func RemoveStaleSockets(paths []string, log zerolog.Logger) ([]string, error) {
	var removed []string
	for _, path := range paths {
		fi, proof, err := staleSocket(path)
		if err != nil || proof == "" {
			if err != nil {
				log.Warn().Err(err).Str("path", path).Msg("cannot judge a unix socket file: left alone")
			}
			continue
		}
		// A handoff's bind mount that a killed safe-restart left over the
		// path makes its removal fail (EBUSY): undo it first.
		if spare, ok := leftoverGuard(path); ok {
			if err := removeLeftoverGuard(path, spare); err != nil {
				return removed, fmt.Errorf("remove the bind mount a killed safe-restart left on %s: %w", path, err)
			}
			log.Warn().Str("path", path).Str("spare", spare).Msg("removed the bind mount a killed safe-restart left on a stale unix socket")
			if fi, proof, err = staleSocket(path); err != nil || proof == "" {
				continue // judged again without the mount
			}
		}
		// The file must be the one judged: a server that bound it meanwhile
		// replaced it with its own.
		now, err := os.Lstat(path)
		if err != nil || !os.SameFile(fi, now) {
			continue
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, fmt.Errorf("remove stale unix socket: %w", err)
		}
		log.Warn().Str("path", path).Str("proof", proof).Msg("removed a stale unix socket a killed server left")
		removed = append(removed, path)
	}
	return removed, nil
}

// staleSocket returns the proof that path is a unix socket file nobody
// listens on, or "" when it is not one: connecting to it is refused
// (ECONNREFUSED), which the kernel answers only when no socket is bound
// and listening to that file, in any network namespace. A listener with a
// full backlog answers EAGAIN: unproven.
func staleSocket(path string) (fs.FileInfo, string, error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fi, "", nil
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fi, "", nil
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fi, "", nil
	}
	return fi, "connect: connection refused (no process listens on it)", nil
}
