package verify

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
)

// TestAcceptFD: a task's syscall line names the descriptor of an accept
// call, in hex; any other call, a running task or a line that does not
// parse names none.
func TestAcceptFD(t *testing.T) {
	if len(acceptCalls) == 0 {
		t.Skip("accept calls are not told apart on this architecture")
	}
	accept := acceptCalls[len(acceptCalls)-1]
	for _, c := range []struct {
		line string
		fd   int
		ok   bool
	}{
		{fmt.Sprintf("%d 0x1a 0x7ffd3c 0x7ffd38 0x80000 0x0 0x0 0x7ffd20 0x7f12\n", accept), 26, true},
		{fmt.Sprintf("%d 0x3 0x0 0x0 0x0 0x0 0x0 0x7ffd20 0x7f12", acceptCalls[0]), 3, true},
		{fmt.Sprintf("%d 0x1a 0x7ffd3c 0x1 0x0 0x0 0x0 0x7ffd20 0x7f12", accept+1), 0, false},
		{"running\n", 0, false},
		{"-1 0x7ffd20 0x7f12\n", 0, false},
		{fmt.Sprintf("%d", accept), 0, false},
		{fmt.Sprintf("%d 0xzz", accept), 0, false},
		{"", 0, false},
	} {
		fd, ok := acceptFD(c.line)
		if fd != c.fd || ok != c.ok {
			t.Errorf("acceptFD(%q) = %d, %v; want %d, %v", c.line, fd, ok, c.fd, c.ok)
		}
	}
}

// TestWaitsInAccept: a thread of this process blocked in accept(2) on a
// listening socket (put on a descriptor above 15, so that its number reads
// differently in hex and in decimal) is found waiting on that socket, and
// never on another listening socket nobody accepts on.
func TestWaitsInAccept(t *testing.T) {
	if len(acceptCalls) == 0 {
		t.Skip("accept calls are not told apart on this architecture")
	}
	listen := func(minFD int) (fd int, inode uint64) {
		t.Helper()
		s, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer syscall.Close(s)
		if err := syscall.Bind(s, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Listen(s, 8); err != nil {
			t.Fatal(err)
		}
		fd, err = unix.FcntlInt(uintptr(s), unix.F_DUPFD_CLOEXEC, minFD)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Close(fd) })
		var st syscall.Stat_t
		if err := syscall.Fstat(fd, &st); err != nil {
			t.Fatal(err)
		}
		return fd, st.Ino
	}
	fd, inode := listen(100)
	_, idle := listen(16)
	self, err := ipcguard.ReadProc("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	tree := []ipcguard.Proc{self}
	if waitsInAccept("/proc", tree, inode) {
		t.Fatal("found a thread waiting in accept before any called it")
	}
	accepted := make(chan error, 1)
	go func() {
		nfd, _, err := syscall.Accept(fd) // a blocking socket: the thread waits in the call
		if err == nil {
			syscall.Close(nfd)
		}
		accepted <- err
	}()
	err = proc.PollEvery(context.Background(), 10*time.Second, time.Millisecond, func() (bool, error) {
		return waitsInAccept("/proc", tree, inode), nil
	})
	if err != nil {
		t.Fatalf("the thread blocked in accept on fd %d was not found: %v", fd, err)
	}
	if waitsInAccept("/proc", tree, idle) {
		t.Error("found a thread waiting on a socket nobody accepts on")
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	c, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(c)
	if err := syscall.Connect(c, sa); err != nil {
		t.Fatal(err)
	}
	if err := <-accepted; err != nil {
		t.Fatal(err)
	}
}
