package sock

import (
	"cmp"
	"net"
	"os"
	"syscall"
	"testing"
)

func TestParseListening(t *testing.T) {
	data := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1568 1 0000000082ed959c 100 0 0 10 0
   1: 020200C0:81C0 507100CB:01BB 06 00000000:00000000 03:000008CD 00000000     0        0 0 3 0000000091b607cb
`
	got := map[uint64]string{}
	if err := parseListening("tcp", data, got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[1568] != "127.0.0.1:8080" {
		t.Fatalf("got %v, want only 1568 -> 127.0.0.1:8080", got)
	}
	v6 := "sl local\n 0: 00000000000000000000000001000000:01BB 00000000000000000000000000000000:0000 0A 0 0 0 0 0 77\n"
	if err := parseListening("tcp6", v6, got); err != nil || got[77] != "[::1]:443" {
		t.Fatalf("tcp6: %v, %v", got, err)
	}
	if err := parseListening("tcp", "h\n 0: zz:1 0:0 0A 0 0 0 0 0 5\n", map[uint64]string{}); err == nil {
		t.Fatal("bad address accepted")
	}
}

func TestParseUnixListening(t *testing.T) {
	data := `Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 20731 /run/php/php8.2-fpm.sock
0000000000000000: 00000002 00000000 00010000 0001 01 20732 /tmp/a b.sock
0000000000000000: 00000003 00000000 00000000 0001 03 20733 /run/php/php8.2-fpm.sock
0000000000000000: 00000002 00000000 00010000 0002 01 20734 /run/dgram.sock
0000000000000000: 00000002 00000000 00010000 0001 01 20735
0000000000000000: 00000002 00000000 00010000 0001 01 20736 @abstract
`
	got := map[uint64]string{}
	if err := parseUnixListening(data, got); err != nil {
		t.Fatal(err)
	}
	want := map[uint64]string{20731: "/run/php/php8.2-fpm.sock", 20732: "/tmp/a b.sock", 20736: "@abstract"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	if err := parseUnixListening("h\n0: 2 0 zz 0001 01 5 /x\n", map[uint64]string{}); err == nil {
		t.Fatal("malformed flags accepted")
	}
	if l := (Listener{Addr: "/run/x.sock"}); l.Network() != "unix" {
		t.Fatal("a path is not a unix listener")
	}
	if l := (Listener{Addr: "[::1]:80"}); l.Network() != "tcp" {
		t.Fatal("[::1]:80 is not tcp")
	}
}

func TestListenersOfSelf(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	listening, err := ReadListening("/proc")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, l := range ListenersOf("/proc", os.Getpid(), listening) {
		found = found || l.Addr == ln.Addr().String()
	}
	if !found {
		t.Fatalf("%s not among the test's own listeners", ln.Addr())
	}
}

// TestTCPListeningMatchesProc: the sock_diag dump of listeners finds the
// test's own TCP listeners (IPv4, IPv6 loopback, dual-stack) under the
// inode and host:port /proc/net/tcp* gives them, and not a connected
// socket.
func TestTCPListeningMatchesProc(t *testing.T) {
	var inodes []uint64
	var first net.Addr
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0", "[::]:0"} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Logf("%s: %v (no IPv6 here)", addr, err)
			continue
		}
		defer ln.Close()
		first = cmp.Or(first, ln.Addr())
		inodes = append(inodes, fileInode(t, ln.(*net.TCPListener)))
	}
	c, err := net.Dial("tcp", first.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	connected, err := ConnInode(c)
	if err != nil {
		t.Fatal(err)
	}
	fromDiag, fromProc := map[uint64]string{}, map[uint64]string{}
	if err := tcpListening(fromDiag); err != nil {
		t.Fatal(err)
	}
	if err := readTCPListening("/proc", fromProc); err != nil {
		t.Fatal(err)
	}
	for _, ino := range inodes {
		if fromDiag[ino] == "" || fromDiag[ino] != fromProc[ino] {
			t.Errorf("listener inode %d: sock_diag says %q, /proc/net says %q", ino, fromDiag[ino], fromProc[ino])
		}
	}
	if addr, ok := fromDiag[connected]; ok {
		t.Errorf("the connected socket %d is listed as listening on %s", connected, addr)
	}
}

// fileInode is the inode of ln's socket.
func fileInode(t *testing.T, ln *net.TCPListener) uint64 {
	t.Helper()
	f, err := ln.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestConflicts: two addresses conflict on the same port with the same IP
// or a wildcard; a unix socket path never conflicts with a TCP address.
func TestConflicts(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"127.0.0.1:80", "127.0.0.1:80", true},
		{"0.0.0.0:80", "127.0.0.1:80", true},
		{"127.0.0.1:80", "[::]:80", true},
		{"127.0.0.1:80", "127.0.0.2:80", false},
		{"127.0.0.1:80", "127.0.0.1:81", false},
		{"/run/x.sock", "127.0.0.1:80", false},
	} {
		if got := Conflicts(tc.a, tc.b); got != tc.want {
			t.Errorf("Conflicts(%s, %s) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}
