package supervise

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/sock"
)

// beside is an overlap's hold on the old master's listening sockets (a
// pidfd_getfd copy of each): SO_REUSEPORT set on them, so that a new
// master started with SO_REUSEPORT binds beside them (each address then
// one reuseport group of the old and the new sockets, whoever started the
// old master and whatever net.ipv4.tcp_migrate_req says); then a program
// on each group steers every new connection to the new master's sockets,
// so that the old ones only drain; and the copies keep the old sockets
// open until the old master has exited, so that what still reached them
// is seen (and logged) before it is reset (README.md, "Apache: overlap").
type beside struct {
	old []sock.Held
	// setOn says which of old lacked SO_REUSEPORT until openBeside set
	// it: restore clears it again.
	setOn []bool
	// steered are the addresses whose group has safe-restart's program.
	steered map[string]bool
	log     zerolog.Logger
}

// openBeside holds copies of the old master's TCP listeners ls, removes a
// program an interrupted restart left on their groups (it would send
// every connection to the next new master before it is verified), and
// sets SO_REUSEPORT on each that lacks it. It fails, having changed
// nothing else, when the kernel (or a seccomp filter) refuses a reuseport
// program or a copy, a listener is a unix socket, or the master has more
// than one socket on an address (listen buckets: the program could not
// tell them from the new master's once one closes).
func openBeside(root string, old ipcguard.Proc, ls []sock.Listener, log zerolog.Logger) (*beside, error) {
	if err := canSteer(); err != nil {
		return nil, fmt.Errorf("the kernel refuses a reuseport program: %w", err)
	}
	want, err := oneSocketEach(ls)
	if err != nil {
		return nil, fmt.Errorf("master %d: %w", old.PID, err)
	}
	held, err := sock.DupListeners(root, old, want)
	if err != nil {
		return nil, err
	}
	b := &beside{old: held, setOn: make([]bool, len(held)), steered: map[string]bool{}, log: log}
	for i, s := range held {
		had, err := detachSteering(s.FD())
		if had {
			log.Warn().Str("listener", s.Addr).Msg("removed the steering program an interrupted restart left")
		}
		on, rerr := sock.ReusePortOn(s.FD())
		if err = errors.Join(err, rerr); err == nil && !on {
			err = setReusePort(s.FD(), true)
			b.setOn[i] = err == nil
		}
		if err != nil {
			return nil, errors.Join(fmt.Errorf("listener %s: %w", s.Addr, err), b.restore())
		}
	}
	return b, nil
}

// oneSocketEach returns ls without repeated sockets, and fails for a unix
// socket or for two sockets on one address.
func oneSocketEach(ls []sock.Listener) ([]sock.Listener, error) {
	var out []sock.Listener
	seen, addrs := map[uint64]bool{}, map[string]bool{}
	for _, l := range ls {
		switch {
		case l.Network() != "tcp":
			return nil, fmt.Errorf("listener %s is a unix socket", l.Addr)
		case seen[l.Inode]:
			continue
		case addrs[l.Addr]:
			return nil, fmt.Errorf("two sockets listen on %s (ListenCoresBucketsRatio): the steering needs one", l.Addr)
		}
		seen[l.Inode], addrs[l.Addr] = true, true
		out = append(out, l)
	}
	return out, nil
}

// steerTo attaches to the reuseport group of each old address the new
// master also listens on (newLs) a program that sends every new
// connection to one of the new master's sockets. A group's sockets are
// numbered in the order they joined, the old master's first; so another
// socket on such an address (another process's, its place unknown) makes
// it fail. An address the new configuration dropped is left alone: it
// closes with the old master. A failure can leave some groups steered
// (see detach).
func (b *beside) steerTo(listening map[uint64]string, newLs []sock.Listener) error {
	newN := map[string]int{}
	ours := map[uint64]bool{}
	for _, s := range b.old {
		ours[s.Inode] = true
	}
	for _, l := range newLs {
		if !ours[l.Inode] {
			newN[l.Addr]++
			ours[l.Inode] = true
		}
	}
	for _, s := range b.old {
		if newN[s.Addr] == 0 {
			b.log.Info().Str("listener", s.Addr).Msg("the new configuration does not listen here: it closes with the old master")
			continue
		}
		if inode, ok := strayOn(listening, s.Addr, ours); ok {
			return fmt.Errorf("another socket (inode %d) listens on %s beside the two masters: cannot steer its connections", inode, s.Addr)
		}
		if err := attachSteering(s.FD(), 1, newN[s.Addr]); err != nil {
			return fmt.Errorf("listener %s: %w", s.Addr, err)
		}
		b.steered[s.Addr] = true
	}
	return nil
}

// strayOn returns a listening socket on addr that is not one of ours.
func strayOn(listening map[uint64]string, addr string, ours map[uint64]bool) (uint64, bool) {
	for inode, a := range listening {
		if a == addr && !ours[inode] {
			return inode, true
		}
	}
	return 0, false
}

// Drain timing: the accept queues are looked at every drainPoll, the
// handshakes under way (a full sock_diag dump) every handshakePoll, for
// at most drainBudget.
const (
	drainPoll     = time.Millisecond
	handshakePoll = 20 * time.Millisecond
	drainBudget   = 5 * time.Second
)

// drain waits, once new connections go to the new master, until none can
// still reach the old one: the handshakes under way on the steered ports
// when it began have ended (one may complete into an old socket; unless
// migrates, where the kernel moves them when the socket closes), and the
// steered old sockets' accept queues are empty. It always returns, within
// drainBudget: what still waits then is logged, and the old master's stop
// goes on (it is what was asked for); so does a failure to list the
// handshakes, which leaves only the queues to wait for.
func (b *beside) drain(ctx context.Context, migrates bool) {
	ports := map[int]bool{}
	for _, s := range b.old {
		if b.steered[s.Addr] {
			ports[s.Port] = true
		}
	}
	hs := handshakes{ports: ports, log: b.log}
	if !migrates {
		hs.snapshot()
	}
	err := proc.PollEvery(ctx, drainBudget, drainPoll, func() (bool, error) {
		if !hs.ended() {
			return false, nil
		}
		n, err := b.queued()
		return n == 0, err
	})
	if err != nil {
		n, _ := b.queued()
		b.log.Warn().Err(err).Int("queued", n).Int("handshakes", len(hs.pending)).
			Msg("the old master's sockets did not drain: stopping it anyway; what still reaches them is reset when it has exited")
	}
}

// handshakes are the connections in their handshake on ports that drain
// waits for: those under way when it began, and those the next dump finds
// (a SYN another CPU was handling as the program was attached).
type handshakes struct {
	ports   map[int]bool
	pending map[uint64]bool
	last    time.Time
	dumps   int
	log     zerolog.Logger
}

// snapshot takes the first dump; a failure leaves nothing to wait for.
func (h *handshakes) snapshot() {
	var err error
	if h.pending, err = halfOpen(h.ports); err != nil {
		h.log.Warn().Err(err).Msg("cannot list the handshakes under way: waiting only for the old accept queues")
	}
	h.last, h.dumps = time.Now(), 1
}

// ended reports whether every pending handshake has ended, dumping again
// at most every handshakePoll.
func (h *handshakes) ended() bool {
	if len(h.pending) == 0 {
		return true
	}
	if time.Since(h.last) < handshakePoll {
		return false
	}
	now, err := halfOpen(h.ports)
	if err != nil {
		h.log.Warn().Err(err).Msg("cannot list the handshakes under way: waiting only for the old accept queues")
		h.pending = nil
		return true
	}
	h.last, h.dumps = time.Now(), h.dumps+1
	for c := range h.pending {
		if !now[c] {
			delete(h.pending, c)
		}
	}
	if h.dumps == 2 {
		for c := range now {
			h.pending[c] = true
		}
	}
	return len(h.pending) == 0
}

// queued is how many connections wait in the steered old sockets' accept
// queues.
func (b *beside) queued() (int, error) {
	total := 0
	for _, s := range b.old {
		if !b.steered[s.Addr] {
			continue
		}
		n, err := acceptQueue(s.FD())
		if err != nil {
			return 0, fmt.Errorf("listener %s: %w", s.Addr, err)
		}
		total += n
	}
	return total, nil
}

// release ends a steered overlap once the old master has exited: the
// copies are closed, resetting what still waited on them (logged: drain
// emptied them, so only a client whose handshake outlived the drain can
// be there); then, once no old socket listens any more (another process
// may hold one), the programs are removed through copies of the new
// master's sockets, taken from master. While an old socket still
// listens the programs stay: without them the kernel's hash would give
// that socket a share again.
func (b *beside) release(root string, master ipcguard.Proc, newLs []sock.Listener) error {
	if n, err := b.queued(); err == nil && n > 0 {
		b.log.Warn().Int("connections", n).Msg("connections queued on the old master's sockets after it exited are reset")
	}
	inodes := map[uint64]string{}
	for _, s := range b.old {
		inodes[s.Inode] = s.Addr
	}
	b.closeOld()
	listening, err := sock.ReadListening(root)
	if err != nil {
		return err
	}
	for inode := range listening {
		if addr, ok := inodes[inode]; ok {
			return fmt.Errorf("an old socket on %s still listens (another process holds it): the steering program stays", addr)
		}
	}
	var want []sock.Listener
	for _, l := range newLs {
		if b.steered[l.Addr] {
			want = append(want, l)
			delete(b.steered, l.Addr) // one socket of each group
		}
	}
	held, err := sock.DupListeners(root, master, want)
	if err != nil {
		return fmt.Errorf("remove the steering program: %w", err)
	}
	var errs []error
	for _, s := range held {
		_, err := detachSteering(s.FD())
		errs = append(errs, err)
		s.File.Close()
	}
	return errors.Join(errs...)
}

// detach removes the programs steerTo attached, through the old sockets:
// the first thing an overlap that fails undoes, so that nothing more goes
// to a new master about to be stopped.
func (b *beside) detach() error {
	var errs []error
	for _, s := range b.old {
		if b.steered[s.Addr] {
			_, err := detachSteering(s.FD())
			errs = append(errs, err)
			delete(b.steered, s.Addr)
		}
	}
	return errors.Join(errs...)
}

// restore gives the old sockets back as they were: SO_REUSEPORT cleared
// where openBeside set it, the copies closed.
func (b *beside) restore() error {
	var errs []error
	for i, s := range b.old {
		if b.setOn[i] {
			errs = append(errs, setReusePort(s.FD(), false))
		}
	}
	b.closeOld()
	return errors.Join(errs...)
}

// closeOld closes the copies of the old sockets.
func (b *beside) closeOld() {
	for _, s := range b.old {
		s.File.Close()
	}
	b.old = nil
}

// steerAndDrain steers new connections to the new master's listeners
// newLs (steerTo) and waits for the old sockets to drain (drain; it runs
// to its end even if ctx is cancelled: once steered, the new master takes
// every connection, and stopping it would cost more than finishing). A
// nil b (no hold: the kernel migrates, or the sockets are shared) does
// nothing.
func (b *beside) steerAndDrain(ctx context.Context, root string, newLs []sock.Listener) error {
	if b == nil {
		return nil
	}
	listening, err := sock.ReadListening(root)
	if err != nil {
		return err
	}
	if err := b.steerTo(listening, newLs); err != nil {
		return err
	}
	b.log.Info().Str("listeners", b.addrs()).Msg("new connections go to the new master; waiting for the old master's queues to drain")
	b.drain(context.WithoutCancel(ctx), migrates(root))
	return nil
}

// releaseLogged is release, for a nil b too, its failure logged: the
// restart itself is done.
func (b *beside) releaseLogged(root string, master ipcguard.Proc, newLs []sock.Listener) {
	if b == nil {
		return
	}
	if err := b.release(root, master, newLs); err != nil {
		b.log.Warn().Err(err).Msg("after the overlap")
	}
}

// detachLogged is detach, for a nil b too, its failure logged.
func (b *beside) detachLogged() {
	if b == nil {
		return
	}
	if err := b.detach(); err != nil {
		b.log.Warn().Err(err).Msg("removing the steering program")
	}
}

// undoLogged is detach then restore, for a nil b too, failures logged.
func (b *beside) undoLogged() {
	if b == nil {
		return
	}
	b.detachLogged()
	if err := b.restore(); err != nil {
		b.log.Warn().Err(err).Msg("giving the old master's sockets back as they were")
	}
}

// addrs returns the steered addresses, for the log.
func (b *beside) addrs() string {
	var out []string
	for _, s := range b.old {
		if b.steered[s.Addr] {
			out = append(out, s.Addr)
		}
	}
	return strings.Join(out, ", ")
}

// migrates reports whether the kernel moves the connections queued on a
// closing SO_REUSEPORT listener to another of its group
// (net.ipv4.tcp_migrate_req=1 in this network namespace).
func migrates(root string) bool {
	v, err := os.ReadFile(filepath.Join(root, migrateReqSysctl))
	return err == nil && strings.TrimSpace(string(v)) == "1"
}

// migrateReqSysctl is the per-network-namespace switch (Linux 5.14) that
// migrates the connections queued on a closing SO_REUSEPORT listener to
// another listener of its group; at 0 they are reset.
const migrateReqSysctl = "sys/net/ipv4/tcp_migrate_req"
