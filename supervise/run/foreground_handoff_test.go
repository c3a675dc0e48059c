package run

import (
	"net"
	"os"
	"reflect"
	"strconv"
	"testing"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/supervise/server"
	"github.com/safe-restart/safe-restart/supervise/sock"
)

// held returns sockets without files, by address and inode.
func held(pairs ...any) []sock.Held {
	var out []sock.Held
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, sock.Held{Listener: sock.Listener{Addr: pairs[i].(string), Inode: uint64(pairs[i+1].(int))}})
	}
	return out
}

// inodes returns the sockets' inodes.
func inodes(socks []sock.Held) []uint64 {
	out := []uint64{}
	for _, s := range socks {
		out = append(out, s.Inode)
	}
	return out
}

// TestDiffHeld: a take replaces the held set by socket inode: a socket
// held already keeps its held copy and the new copy is closed, one not
// taken again is dropped and closed, a new one is added, and a socket the
// master holds at two fds is held once.
func TestDiffHeld(t *testing.T) {
	a, b, c := "127.0.0.1:80", "/run/php.sock", "[::]:443"
	for _, tt := range []struct {
		name                          string
		held, taken                   []sock.Held
		next, closing, dropped, added []uint64
		nextFromHeld                  []bool // which of next are the held copies
	}{
		{"first take", nil, held(a, 1, b, 2), []uint64{1, 2}, []uint64{}, []uint64{}, []uint64{1, 2}, []bool{false, false}},
		{"same set", held(a, 1, b, 2), held(a, 1, b, 2), []uint64{1, 2}, []uint64{1, 2}, []uint64{}, []uint64{}, []bool{true, true}},
		{"one lost, one gained", held(a, 1, b, 2), held(a, 1, c, 3), []uint64{1, 3}, []uint64{1, 2}, []uint64{2}, []uint64{3}, []bool{true, false}},
		{"rebound at the same path", held(b, 2), held(b, 4), []uint64{4}, []uint64{2}, []uint64{2}, []uint64{4}, []bool{false}},
		{"none left", held(a, 1), nil, []uint64{}, []uint64{1}, []uint64{1}, []uint64{}, []bool{}},
		{"two fds, one socket", nil, held(a, 1, a, 1), []uint64{1}, []uint64{1}, []uint64{}, []uint64{1}, []bool{false}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for i := range tt.held {
				tt.held[i].Path = "held" // marks the held copies
			}
			got := diffHeld(tt.held, tt.taken)
			for name, pair := range map[string][2][]uint64{
				"next": {inodes(got.next), tt.next}, "closing": {inodes(got.closing), tt.closing},
				"dropped": {inodes(got.dropped), tt.dropped}, "added": {inodes(got.added), tt.added},
			} {
				if !reflect.DeepEqual(pair[0], pair[1]) {
					t.Errorf("%s: inodes %v, want %v", name, pair[0], pair[1])
				}
			}
			for i, s := range got.next {
				if i < len(tt.nextFromHeld) && (s.Path == "held") != tt.nextFromHeld[i] {
					t.Errorf("next[%d] (inode %d) is the held copy: %v, want %v", i, s.Inode, s.Path == "held", tt.nextFromHeld[i])
				}
			}
		})
	}
}

// listening returns a held TCP socket on 127.0.0.1, a copy of a listener
// the test closes.
func listening(t *testing.T) sock.Held {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	addr := ln.Addr().(*net.TCPAddr)
	return sock.Held{Listener: sock.Listener{Addr: addr.String(), Inode: inodeOf(t, f)}, File: f, Family: "inet", IP: addr.IP, Port: addr.Port}
}

// inodeOf is the socket inode of f.
func inodeOf(t *testing.T, f *os.File) uint64 {
	t.Helper()
	target, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseUint(target[len("socket:["):len(target)-1], 10, 64)
	if err != nil {
		t.Fatalf("fd target %q: %v", target, err)
	}
	return n
}

// TestRunHandoffForStart: the first start never inherits; a restart
// inherits the held sockets that the configuration still names, as fds
// in held order, with php-fpm's FPM_SOCKETS naming them (the variable of
// this process's environment replaced); a socket the configuration no
// longer names is closed, and with none left the start binds its own.
func TestRunHandoffForStart(t *testing.T) {
	p, err := server.LookupProfile("php8.2-fpm")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("FPM_SOCKETS", "stale=9")
	r := newRunHandoff(ForegroundOptions{Profile: &p, Log: zerolog.New(zerolog.NewTestWriter(t))})
	s1, s2 := listening(t), listening(t)
	r.apply(1, diffHeld(nil, []sock.Held{s1, s2}))
	if files, env := r.forStart(1, []string{s1.Addr, s2.Addr}); files != nil || env != nil {
		t.Fatalf("first start: files %v, env %v; want none", files, env)
	}
	files, env := r.forStart(2, []string{s2.Addr})
	want := []string{"FPM_SOCKETS=" + s2.Addr + "=3"}
	if len(files) != 1 || files[0] != s2.File || !reflect.DeepEqual(env, want) {
		t.Fatalf("restart: files %v, env %v; want only %s's socket, %v", files, env, s2.Addr, want)
	}
	for _, kv := range r.env(env) {
		if kv == "FPM_SOCKETS=stale=9" {
			t.Errorf("the child's environment keeps this process's FPM_SOCKETS")
		}
	}
	if _, err := s1.File.Stat(); err == nil {
		t.Errorf("the socket the configuration dropped is still held")
	}
	if files, env := r.forStart(3, nil); files != nil || env != nil || r.why == "" {
		t.Fatalf("configuration without listeners: files %v, env %v, why %q; want a plain start and why", files, env, r.why)
	}
	r.release()
}

// TestRunHandoffOff: without a profile, with --no-handoff and for Apache
// no socket is ever taken or inherited, and the latter two say why.
func TestRunHandoffOff(t *testing.T) {
	apache, err := server.LookupProfile("apache2")
	if err != nil {
		t.Fatal(err)
	}
	fpm, err := server.LookupProfile("php8.2-fpm")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		o    ForegroundOptions
		why  string
	}{
		{"any command", ForegroundOptions{}, ""},
		{"apache", ForegroundOptions{Profile: &apache}, "apache cannot take listening sockets from its starter"},
		{"no-handoff", ForegroundOptions{Profile: &fpm, NoHandoff: true}, "disabled (--no-handoff)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRunHandoff(tt.o)
			if r.inh != nil || r.why != tt.why {
				t.Errorf("inheritor %v, why %q; want none, %q", r.inh, r.why, tt.why)
			}
		})
	}
}
