package verify

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/safe-restart/safe-restart/supervise/sock"
)

// TestLogTailFollowsRotation: lines written after the mark are read from
// the renamed file and from the new one (logrotate, then a reload).
func TestLogTailFollowsRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "error.log")
	if err := os.WriteFile(path, []byte("before the mark\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tail := NewLogTail(dir, "error.log")
	defer tail.Close()
	old, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := os.Rename(path, path+".1"); err != nil { // logrotate
		t.Fatal(err)
	}
	if _, err := old.WriteString("AH00171 into the renamed file\n"); err != nil { // the server, before it reopens
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("AH00163 into the new file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got := tail.Since()
	if want := "AH00171 into the renamed file\nAH00163 into the new file\n"; got != want {
		t.Fatalf("since() = %q, want %q", got, want)
	}
	if tail := NewLogTail(dir, "|/usr/bin/rotatelogs x"); tail.Since() != "" {
		t.Fatal("a piped log has no tail")
	}
}

// TestCheckServesAnyHTTPListener: a listener for another protocol (nginx's
// stream block) beside an HTTP one does not fail the default health check;
// with no HTTP listener at all it fails, and a 5xx answer fails.
func TestCheckServesAnyHTTPListener(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	go func() { // accepts and closes: not HTTP
		for {
			c, err := raw.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	status := http.StatusOK
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(status) }))
	defer web.Close()
	rawL := sock.Listener{Addr: raw.Addr().String()}
	webL := sock.Listener{Addr: web.Listener.Addr().String()}
	if err := CheckServes([]sock.Listener{rawL, webL}, "", true, 2*time.Second); err != nil {
		t.Fatalf("stream + HTTP listener: %v", err)
	}
	if err := CheckServes([]sock.Listener{rawL}, "", true, 2*time.Second); err == nil {
		t.Fatal("a listener that answers no HTTP passed the health check")
	}
	if err := CheckServes([]sock.Listener{rawL}, "", false, 2*time.Second); err != nil {
		t.Fatalf("a server that speaks no HTTP needs only accepting listeners: %v", err)
	}
	status = http.StatusBadGateway
	if err := CheckServes([]sock.Listener{rawL, webL}, "", true, 2*time.Second); err == nil {
		t.Fatal("a 502 passed the health check")
	}
}
