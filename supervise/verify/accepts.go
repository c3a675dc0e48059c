package verify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/server"
	"github.com/safe-restart/safe-restart/supervise/sock"
)

// generationAccepts proves that master's own generation (the master and
// its descendants running exe) takes connections on every one of
// listeners. While an old generation accepts beside it (an overlap: the
// same sockets, or SO_REUSEPORT), a health check may be answered by the
// old one, so that a new generation whose workers die at once would pass
// it. For each listener it opens connections until a process of the tree
// takes one, or the deadline passes.
// A probe sends the start of a request and no more (see server.ProbeStart), so
// that the worker that takes it holds it while it waits for the rest.
//
// When the kernel cannot say who took a probe (sock_diag refused), the
// error wraps errNoProof: the caller falls back on the health check.
func generationAccepts(ctx context.Context, root string, master ipcguard.Proc, exe string, proto []byte, listeners []sock.Listener, deadline time.Time) error {
	for _, l := range listeners {
		if err := listenerAccepted(ctx, root, master, exe, proto, l, deadline); err != nil {
			return fmt.Errorf("listener %s: %w", l.Addr, err)
		}
	}
	return nil
}

// errNoProof reports that the kernel cannot say which process took a
// probe connection.
var errNoProof = errors.New("cannot tell which process takes a connection")

// CheckGeneration runs generationAccepts and returns its failure; one for
// lack of a proof (errNoProof) is logged, and nil: the health check
// stands, as before this proof.
func CheckGeneration(ctx context.Context, root string, p server.Profile, master ipcguard.Proc, probe []byte, listeners []sock.Listener, deadline time.Time, log zerolog.Logger) error {
	err := generationAccepts(ctx, root, master, p.Binary, probe, listeners, deadline)
	if errors.Is(err, errNoProof) {
		log.Warn().Err(err).Int("pid", master.PID).Msg("cannot prove that the new master's own workers take connections: relying on the health check")
		return nil
	}
	return err
}

// WorkersAccept proves, for a server.AcceptProber kind, that master's own
// generation takes connections on listeners before deadline (see
// generationAccepts); other kinds prove they serve by the health check.
func WorkersAccept(ctx context.Context, root string, p server.Profile, master ipcguard.Proc, listeners []sock.Listener, deadline time.Time, log zerolog.Logger) error {
	ap, ok := p.Driver.(server.AcceptProber)
	if !ok {
		return nil
	}
	return CheckGeneration(ctx, root, p, master, ap.AcceptProbe(), listeners, deadline, log)
}

// maxProbes bounds the probes that listenerAccepted keeps open at once;
// realTrafficEvery is how many of its polls pass between two reads of the
// tree while no probe was taken.
const (
	maxProbes        = 64
	realTrafficEvery = 4
)

// listenerAccepted proves that master's tree takes connections on l
// before the deadline. A thread of the tree that waits in accept(2) on
// l's socket proves it (waitsInAccept: php-fpm's workers, Apache
// prefork's children), at once when one already does, no probe opened.
// Otherwise it opens probe connections, each sending start, in batches of
// 1, 2, 4, ... (up to maxProbes open at once), the next batch only once
// no probe waits in the listener's queue; whenever a probe is accepted,
// and every realTrafficEvery polls, it reads the tree (treeTakes): a
// thread waiting in accept, a probe the tree holds, or any connection it
// accepted on l (acceptedOn: real traffic, which under load keeps the
// probes queued behind it) proves it. Probes another process took (the
// old generation) are closed after that read: a worker of a pool that
// accepts in turn (php-fpm's, whose idle old workers the kernel wakes
// first: every probe went to the old pool) goes back to the end of the
// queue, behind the new workers, so that each batch comes nearer to them.
func listenerAccepted(ctx context.Context, root string, master ipcguard.Proc, exe string, start []byte, l sock.Listener, deadline time.Time) error {
	if tree, err := proc.LiveTree(root, master, exe); err == nil && waitsInAccept(root, tree, l.Inode) {
		return nil
	}
	addr := l.Addr
	if l.Network() == "tcp" {
		addr = Dialable(addr)
	}
	ps := probeSet{l: l}
	defer ps.close()
	var last error
	batch, polls := 1, 0
	timedOut, err := proc.Retry(ctx, proc.Wall, deadline, ReadyPoll, func() (bool, error) {
		polls++
		if !ps.queued() {
			opened, err := ps.open(ctx, addr, start, min(batch, maxProbes-len(ps.conns)), deadline)
			if err != nil {
				last = err
			}
			if opened > 0 {
				batch = min(2*batch, maxProbes)
			}
		}
		fresh, err := ps.accept()
		if err != nil {
			return true, err
		}
		return (fresh || polls%realTrafficEvery == 0) && treeTakes(root, master, exe, l, &ps), nil
	})
	if timedOut {
		return fmt.Errorf("no process of master %d's generation took a connection (last error: %v)", master.PID, last)
	}
	return err
}

// treeTakes reads master's tree once and reports whether it takes
// connections on l: a thread of it waits in accept(2) on l, or it holds a
// probe of ps or a connection accepted on l. Otherwise the probes taken
// (noted before this read, so by another process) are closed.
func treeTakes(root string, master ipcguard.Proc, exe string, l sock.Listener, ps *probeSet) bool {
	tree, err := proc.LiveTree(root, master, exe)
	if err != nil {
		return false
	}
	if waitsInAccept(root, tree, l.Inode) {
		return true
	}
	held := socketsOf(root, tree)
	if holdsAny(held, ps.taken()) || holdsAny(held, acceptedOn(l)) {
		return true
	}
	ps.closeTaken()
	return false
}

// acceptedOn returns the inodes of the connections some process accepted
// on the TCP listener l (sock.AcceptedOn); empty for a unix listener, or
// when the kernel cannot say.
func acceptedOn(l sock.Listener) map[uint64]bool {
	conns, err := sock.AcceptedOn(l)
	if err != nil {
		return map[uint64]bool{}
	}
	return conns
}

// probeSet is the probe connections to one listener that listenerAccepted
// keeps open, each with the inode of its server's end once a process
// accepted it.
type probeSet struct {
	l      sock.Listener
	conns  []net.Conn
	server []uint64 // per conn; 0 while it waits in the listener's queue
}

// open opens up to n more probes to addr (l's), each sending start, and
// returns how many it opened; it stops at the first that fails (a full
// queue drops the handshake: more would wait the same), and at ctx's end
// or the deadline.
func (p *probeSet) open(ctx context.Context, addr string, start []byte, n int, deadline time.Time) (int, error) {
	d := net.Dialer{Timeout: time.Second, Deadline: deadline}
	for i := range n {
		c, err := d.DialContext(ctx, p.l.Network(), addr)
		if err == nil {
			if _, err = c.Write(start); err != nil {
				c.Close()
			}
		}
		if err != nil {
			return i, err
		}
		p.conns, p.server = append(p.conns, c), append(p.server, 0)
	}
	return n, nil
}

// queued reports whether a probe waits in the listener's queue.
func (p *probeSet) queued() bool { return slices.Contains(p.server, 0) }

// accept notes the server ends of the probes accepted since the last call
// and reports whether there were any; an error wraps errNoProof when the
// kernel cannot say.
func (p *probeSet) accept() (bool, error) {
	fresh := false
	for i, c := range p.conns {
		if p.server[i] != 0 {
			continue
		}
		server, err := serverEnd(p.l, c)
		if err != nil {
			return false, fmt.Errorf("%w: %w", errNoProof, err)
		}
		p.server[i], fresh = server, fresh || server != 0
	}
	return fresh, nil
}

// taken are the server ends of the accepted probes.
func (p *probeSet) taken() map[uint64]bool {
	out := map[uint64]bool{}
	for _, ino := range p.server {
		if ino != 0 {
			out[ino] = true
		}
	}
	return out
}

// closeTaken closes the accepted probes, keeping those still queued.
func (p *probeSet) closeTaken() {
	n := 0
	for i, c := range p.conns {
		if p.server[i] != 0 {
			c.Close()
			continue
		}
		p.conns[n], p.server[n] = c, 0
		n++
	}
	p.conns, p.server = p.conns[:n], p.server[:n]
}

// close closes every probe.
func (p *probeSet) close() {
	for _, c := range p.conns {
		c.Close()
	}
	p.conns, p.server = nil, nil
}

// serverEnd returns the inode of the server's end of the probe connection
// c to l, asking the kernel for that one socket (sock_diag): 0 while it
// waits in the listener's queue.
func serverEnd(l sock.Listener, c net.Conn) (uint64, error) {
	if l.Network() == "unix" {
		ino, err := sock.ConnInode(c)
		if err != nil {
			return 0, err
		}
		return sock.UnixPeerInode(ino)
	}
	local, ok1 := c.RemoteAddr().(*net.TCPAddr) // the server's end: its local address is the one dialed
	remote, ok2 := c.LocalAddr().(*net.TCPAddr)
	if !ok1 || !ok2 {
		return 0, fmt.Errorf("%s: not a TCP connection", l.Addr)
	}
	ino, err := sock.TCPInode(local, remote)
	if errors.Is(err, syscall.ENOENT) {
		return 0, nil // not established on the server's side yet
	}
	return ino, err
}

// holdsAny reports whether held has one of the sockets.
func holdsAny(held, sockets map[uint64]bool) bool {
	for inode := range sockets {
		if held[inode] {
			return true
		}
	}
	return false
}

// TreeSockets returns the inodes of the sockets that master and its
// descendants running exe hold.
func TreeSockets(root string, master ipcguard.Proc, exe string) (map[uint64]bool, error) {
	tree, err := proc.LiveTree(root, master, exe)
	if err != nil {
		return nil, err
	}
	return socketsOf(root, tree), nil
}

// socketsOf returns the inodes of the sockets the processes of tree hold.
func socketsOf(root string, tree []ipcguard.Proc) map[uint64]bool {
	held := map[uint64]bool{}
	for _, p := range tree {
		for _, s := range sock.SocketFDs(root, p.PID) {
			held[s.Inode] = true
		}
	}
	return held
}

// ReadyPoll is how often a start looks for its master and for it to serve:
// every poll the clients wait for is time added to the restart.
const ReadyPoll = 5 * time.Millisecond
