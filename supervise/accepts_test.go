package supervise

import (
	"net"
	"path/filepath"
	"testing"
)

// TestServerEnd: the server's end of a connection has no inode while it
// waits for accept(2), and is the accepted socket once accepted, over TCP
// and over a unix socket (sock_diag).
func TestServerEnd(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			addr := "127.0.0.1:0"
			if network == "unix" {
				addr = filepath.Join(t.TempDir(), "s.sock")
			}
			ln, err := net.Listen(network, addr)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			l := Listener{Addr: ln.Addr().String()}
			c, err := net.Dial(network, ln.Addr().String())
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
			want, err := connInode(s)
			if err != nil {
				t.Fatal(err)
			}
			if ino, err := serverEnd(l, c); err != nil || ino != want {
				t.Fatalf("after accept: inode %d, %v; want the accepted socket's %d", ino, err, want)
			}
		})
	}
}
