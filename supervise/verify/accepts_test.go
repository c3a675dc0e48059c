package verify

import (
	"errors"
	"net"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/safe-restart/safe-restart/supervise/sock"
)

// TestServerEnd: the server's end of a connection has no inode while it
// waits for accept(2), and is the accepted socket once accepted, over TCP
// (IPv4, and IPv4 to a dual-stack IPv6 socket) and over a unix socket
// (sock_diag).
func TestServerEnd(t *testing.T) {
	for _, c := range []struct{ name, network, listen, dial string }{
		{"tcp", "tcp", "127.0.0.1:0", "127.0.0.1"},
		{"tcp dual stack", "tcp", "[::]:0", "127.0.0.1"},
		{"unix", "unix", "s.sock", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			network, addr := c.network, c.listen
			if network == "unix" {
				addr = filepath.Join(t.TempDir(), addr)
			}
			ln, err := net.Listen(network, addr)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			l := sock.Listener{Addr: ln.Addr().String()}
			target := ln.Addr().String()
			if c.dial != "" {
				target = net.JoinHostPort(c.dial, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
			}
			c, err := net.Dial(network, target)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if ino, err := serverEnd(l, c); err != nil || ino != 0 {
				t.Fatalf("before accept: inode %d, %v; want 0", ino, err)
			}
			s, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			want, err := sock.ConnInode(s)
			if err != nil {
				t.Fatal(err)
			}
			if ino, err := serverEnd(l, c); err != nil || ino != want {
				t.Fatalf("after accept: inode %d, %v; want the accepted socket's %d", ino, err, want)
			}
		})
	}
}

// TestProbeSetWithoutProof: when the kernel cannot be asked who took a
// probe (here: not a socket at all), the failure says there is no proof
// (errNoProof), which the callers answer with the health check alone.
func TestProbeSetWithoutProof(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	ps := probeSet{l: sock.Listener{Addr: "127.0.0.1:1"}, conns: []net.Conn{a}, server: []uint64{0}}
	defer ps.close()
	_, err := ps.accept()
	if !errors.Is(err, errNoProof) {
		t.Fatalf("probe over a pipe: %v, want errNoProof", err)
	}
}

// TestAcceptedOn: the connections accepted on a listener are found by its
// address and port (sock_diag), not one still queued, not one accepted on
// another address with the same port (nor, for an IPv4 wildcard, an IPv6
// one), not the client's end.
func TestAcceptedOn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	other, err := net.Listen("tcp", net.JoinHostPort("127.0.0.2", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	accept := func(l net.Listener) (client, server net.Conn) {
		t.Helper()
		client, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { client.Close() })
		if server, err = l.Accept(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { server.Close() })
		return client, server
	}
	client, server := accept(ln)
	_, elsewhere := accept(other)
	queued, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer queued.Close()
	got := acceptedOn(sock.Listener{Addr: ln.Addr().String()})
	for _, c := range []struct {
		name string
		conn net.Conn
		want bool
	}{{"accepted", server, true}, {"accepted on 127.0.0.2", elsewhere, false}, {"client end", client, false}, {"queued (client end)", queued, false}} {
		ino, err := sock.ConnInode(c.conn)
		if err != nil {
			t.Fatal(err)
		}
		if got[ino] != c.want {
			t.Errorf("%s (inode %d): found %v, want %v", c.name, ino, got[ino], c.want)
		}
	}
	if len(got) != 1 {
		t.Errorf("found %d accepted connections, want 1 (the queued one has no server-side inode yet)", len(got))
	}
	if v6, err := net.Listen("tcp", net.JoinHostPort("::1", strconv.Itoa(port))); err == nil {
		defer v6.Close()
		accept(v6) // an IPv6 connection on the port: not an IPv4 wildcard's
	}
	if any := acceptedOn(sock.Listener{Addr: net.JoinHostPort("0.0.0.0", strconv.Itoa(port))}); len(any) != 2 {
		t.Errorf("an IPv4 wildcard listener's port: found %d accepted connections, want 2", len(any))
	}
}
