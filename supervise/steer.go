package supervise

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/ipcguard"
)

// beside is an overlap's hold on the old master's listening sockets (a
// pidfd_getfd copy of each): SO_REUSEPORT set on them, so that a new
// master started with SO_REUSEPORT binds beside them (each address then
// one reuseport group of the old and the new sockets, whoever started the
// old master and whatever net.ipv4.tcp_migrate_req says); then a program
// on each group steers every new connection to the new master's sockets,
// so that the old ones only drain; and the copies keep the old sockets
// open until the old master has exited, so that nothing a client sent to
// them is lost unseen (README.md, "Apache: overlap").
type beside struct {
	old []heldSocket
	// setOn says which of old lacked SO_REUSEPORT until openBeside set
	// it: undo clears it again.
	setOn   []bool
	steered bool
	log     zerolog.Logger
}

// openBeside holds copies of the old master's TCP listeners ls and sets
// SO_REUSEPORT on each that lacks it. It fails, having changed nothing,
// when the kernel (or a seccomp filter) refuses a reuseport program or a
// copy, or a listener is a unix socket.
func openBeside(root string, old ipcguard.Proc, ls []Listener, log zerolog.Logger) (*beside, error) {
	if err := canSteer(); err != nil {
		return nil, fmt.Errorf("the kernel refuses a reuseport program: %w", err)
	}
	var want []Listener
	seen := map[uint64]bool{}
	for _, l := range ls {
		if l.network() != "tcp" {
			return nil, fmt.Errorf("listener %s is a unix socket", l.Addr)
		}
		if !seen[l.Inode] {
			seen[l.Inode] = true
			want = append(want, l)
		}
	}
	held, err := dupListeners(root, old, want)
	if err != nil {
		return nil, err
	}
	b := &beside{old: held, setOn: make([]bool, len(held)), log: log}
	for i, s := range held {
		on, err := reusePortOn(s.fd())
		if err == nil && !on {
			err = setReusePort(s.fd(), true)
			b.setOn[i] = err == nil
		}
		if err != nil {
			return nil, errors.Join(fmt.Errorf("listener %s: %w", s.Addr, err), b.undo())
		}
	}
	return b, nil
}

// steerTo attaches to each address's reuseport group a program that sends
// every new connection to one of the new master's sockets (newLs). The
// group's sockets are numbered in the order they joined: the old master's
// first, then the new master's; so any other socket on the address
// (another process's, its place unknown) makes it fail.
func (b *beside) steerTo(listening map[uint64]string, newLs []Listener) error {
	oldN, newN := map[string]int{}, map[string]int{}
	ours := map[uint64]bool{}
	for _, s := range b.old {
		oldN[s.Addr]++
		ours[s.Inode] = true
	}
	for _, l := range newLs {
		if !ours[l.Inode] {
			newN[l.Addr]++
			ours[l.Inode] = true
		}
	}
	for inode, addr := range listening {
		if oldN[addr] > 0 && !ours[inode] {
			return fmt.Errorf("another socket (inode %d) listens on %s beside the two masters: cannot steer its connections", inode, addr)
		}
	}
	done := map[string]bool{}
	for _, s := range b.old {
		if done[s.Addr] {
			continue
		}
		done[s.Addr] = true
		if newN[s.Addr] == 0 {
			return fmt.Errorf("the new master does not listen on %s", s.Addr)
		}
		if err := attachSteering(s.fd(), oldN[s.Addr], newN[s.Addr]); err != nil {
			return fmt.Errorf("listener %s: %w", s.Addr, err)
		}
		b.steered = true
	}
	return nil
}

// drainPoll is how often drain looks at the old sockets.
const drainPoll = time.Millisecond

// drain waits, once new connections go to the new master, until none can
// still reach the old one: every handshake under way when it began has
// ended (one may complete into an old socket), and the old sockets'
// accept queues are empty. Past within it logs what still waits and
// returns: the old master's stop is what was asked for.
func (b *beside) drain(ctx context.Context, within time.Duration) error {
	ports := map[int]bool{}
	for _, s := range b.old {
		ports[s.port] = true
	}
	pending, err := halfOpen(ports)
	if err != nil {
		b.log.Warn().Err(err).Msg("cannot list the handshakes under way: waiting only for the old accept queues")
		pending = nil
	}
	err = pollEvery(ctx, within, drainPoll, func() (bool, error) {
		if len(pending) > 0 {
			now, err := halfOpen(ports)
			if err != nil {
				return false, err
			}
			for c := range pending {
				if !now[c] {
					delete(pending, c)
				}
			}
			if len(pending) > 0 {
				return false, nil
			}
		}
		n, err := b.queued()
		return n == 0, err
	})
	if err != nil && ctx.Err() == nil {
		n, _ := b.queued()
		b.log.Warn().Err(err).Int("queued", n).Int("handshakes", len(pending)).
			Msg("the old master's sockets did not drain: stopping it anyway")
		return nil
	}
	return err
}

// queued is how many connections wait in the old sockets' accept queues.
func (b *beside) queued() (int, error) {
	total := 0
	for _, s := range b.old {
		n, err := acceptQueue(s.fd())
		if err != nil {
			return 0, fmt.Errorf("listener %s: %w", s.Addr, err)
		}
		total += n
	}
	return total, nil
}

// release ends a steered overlap once the old master has exited: the
// copies are closed, resetting what still waited on them (logged: drain
// emptied them, so only a client that completed a handshake later than
// any drain could see), then the program is removed from each group
// through a copy of the new master's socket, taken from master.
func (b *beside) release(root string, master ipcguard.Proc, newLs []Listener) error {
	if n, err := b.queued(); err == nil && n > 0 {
		b.log.Warn().Int("connections", n).Msg("connections queued on the old master's sockets after it exited are reset")
	}
	b.closeOld()
	if !b.steered {
		return nil
	}
	one := map[string]Listener{}
	for _, l := range newLs {
		one[l.Addr] = l
	}
	var want []Listener
	for _, l := range one {
		want = append(want, l)
	}
	held, err := dupListeners(root, master, want)
	if err != nil {
		return fmt.Errorf("remove the steering program: %w", err)
	}
	var errs []error
	for _, s := range held {
		errs = append(errs, detachSteering(s.fd()))
		s.file.Close()
	}
	return errors.Join(errs...)
}

// undo gives the old sockets back as they were, for an overlap that
// failed: the program removed, SO_REUSEPORT cleared where openBeside set
// it, the copies closed.
func (b *beside) undo() error {
	var errs []error
	for i, s := range b.old {
		if b.steered {
			errs = append(errs, detachSteering(s.fd()))
		}
		if b.setOn[i] {
			errs = append(errs, setReusePort(s.fd(), false))
		}
	}
	b.closeOld()
	return errors.Join(errs...)
}

// closeOld closes the copies of the old sockets.
func (b *beside) closeOld() {
	for _, s := range b.old {
		s.file.Close()
	}
	b.old = nil
}

// steerAndDrain steers new connections to the new master's listeners
// newLs (steerTo) and waits for the old sockets to drain (drain). A nil b
// (no hold: the kernel migrates, or the sockets are shared) does nothing.
func (b *beside) steerAndDrain(ctx context.Context, root string, newLs []Listener, within time.Duration) error {
	if b == nil {
		return nil
	}
	listening, err := readListening(root)
	if err != nil {
		return err
	}
	if err := b.steerTo(listening, newLs); err != nil {
		return err
	}
	b.log.Info().Str("listeners", b.addrs()).Msg("new connections go to the new master; waiting for the old master's queues to drain")
	return b.drain(ctx, within)
}

// releaseLogged is release, for a nil b too, its failure logged: the
// restart itself is done.
func (b *beside) releaseLogged(root string, master ipcguard.Proc, newLs []Listener) {
	if b == nil {
		return
	}
	if err := b.release(root, master, newLs); err != nil {
		b.log.Warn().Err(err).Msg("after the overlap")
	}
}

// undoLogged is undo, for a nil b too, its failure logged.
func (b *beside) undoLogged() {
	if b == nil {
		return
	}
	if err := b.undo(); err != nil {
		b.log.Warn().Err(err).Msg("giving the old master's sockets back as they were")
	}
}

// addrs returns the addresses of the old sockets, for the log.
func (b *beside) addrs() string {
	var out []string
	for _, s := range b.old {
		out = append(out, s.Addr)
	}
	return strings.Join(out, ", ")
}
