package supervise

import (
	"reflect"
	"strings"
	"testing"

	"github.com/safe-restart/safe-restart/supervise/sock"
)

// TestOneSocketEach: the steering takes one socket per address: a socket
// held at two fds counts once; a unix socket, or two sockets on one
// address (listen buckets), are refused.
func TestOneSocketEach(t *testing.T) {
	a, a2, b := sock.Listener{Addr: "127.0.0.1:80", Inode: 1}, sock.Listener{Addr: "127.0.0.1:80", Inode: 2}, sock.Listener{Addr: "[::]:443", Inode: 3}
	got, err := oneSocketEach([]sock.Listener{a, b, a})
	if err != nil || !reflect.DeepEqual(got, []sock.Listener{a, b}) {
		t.Fatalf("oneSocketEach(a, b, a) = %v, %v; want a, b", got, err)
	}
	for _, c := range []struct {
		ls   []sock.Listener
		want string
	}{
		{[]sock.Listener{a, a2}, "two sockets listen on 127.0.0.1:80"},
		{[]sock.Listener{{Addr: "/run/php/php.sock", Inode: 4}}, "unix socket"},
	} {
		if _, err := oneSocketEach(c.ls); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("oneSocketEach(%v): %v; want %q", c.ls, err, c.want)
		}
	}
}

// TestStrayOn: another socket on a steered address is found; the two
// masters' own are not, nor sockets on other addresses.
func TestStrayOn(t *testing.T) {
	listening := map[uint64]string{1: "127.0.0.1:80", 2: "127.0.0.1:80", 3: "127.0.0.1:81"}
	if inode, ok := strayOn(listening, "127.0.0.1:80", map[uint64]bool{1: true, 2: true}); ok {
		t.Errorf("strayOn found %d among the masters' own sockets", inode)
	}
	if inode, ok := strayOn(listening, "127.0.0.1:80", map[uint64]bool{1: true}); !ok || inode != 2 {
		t.Errorf("strayOn = %d, %v; want 2", inode, ok)
	}
}
