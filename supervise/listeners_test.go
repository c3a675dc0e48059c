package supervise

import (
	"net"
	"os"
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

func TestListenersOfSelf(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	listening, err := readListening("/proc")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, l := range listenersOf("/proc", os.Getpid(), listening) {
		found = found || l.Addr == ln.Addr().String()
	}
	if !found {
		t.Fatalf("%s not among the test's own listeners", ln.Addr())
	}
}
