package supervise

import (
	"reflect"
	"strings"
	"testing"
)

// TestOneSocketEach: the steering takes one socket per address: a socket
// held at two fds counts once; a unix socket, or two sockets on one
// address (listen buckets), are refused.
func TestOneSocketEach(t *testing.T) {
	a, a2, b := Listener{Addr: "127.0.0.1:80", Inode: 1}, Listener{Addr: "127.0.0.1:80", Inode: 2}, Listener{Addr: "[::]:443", Inode: 3}
	got, err := oneSocketEach([]Listener{a, b, a})
	if err != nil || !reflect.DeepEqual(got, []Listener{a, b}) {
		t.Fatalf("oneSocketEach(a, b, a) = %v, %v; want a, b", got, err)
	}
	for _, c := range []struct {
		ls   []Listener
		want string
	}{
		{[]Listener{a, a2}, "two sockets listen on 127.0.0.1:80"},
		{[]Listener{{Addr: "/run/php/php.sock", Inode: 4}}, "unix socket"},
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
