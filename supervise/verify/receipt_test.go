package verify

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/safe-restart/safe-restart/supervise/sock"
)

// TestWatch: a listener that answers and one where nothing listens (its
// address given twice, as SO_REUSEPORT sockets are) are probed once per
// address; the refusals are counted, the longest gap is the dead one's
// whole watch, and Verified runs from MarkActed to the first MarkVerified.
func TestWatch(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNotFound) }))
	defer srv.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	live := srv.Listener.Addr().String()
	w := StartWatch([]sock.Listener{{Addr: live}, {Addr: dead}, {Addr: dead}}, true, "")
	deadline := time.Now().Add(10 * time.Second)
	for {
		w.mu.Lock()
		enough := w.r.Answered >= 3 && w.r.Refused >= 3
		w.mu.Unlock()
		if enough {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("too few probes in 10 s")
		}
		time.Sleep(time.Millisecond)
	}
	w.MarkActed()
	acted := time.Now()
	time.Sleep(5 * time.Millisecond)
	w.MarkVerified()
	first := time.Since(acted)
	time.Sleep(5 * time.Millisecond)
	w.MarkVerified()
	r := w.Stop()
	whole := time.Since(w.began)
	if len(r.Listeners) != 2 || r.Probes != r.Answered+r.Refused+r.Reset+r.Failed || r.Reset != 0 || r.Failed != 0 {
		t.Errorf("receipt %+v", r)
	}
	if r.LongestGap > whole || r.LongestGap < acted.Sub(w.began) {
		t.Errorf("longest gap %s, want the dead listener's whole watch (%s)", r.LongestGap, whole)
	}
	if r.Verified < 5*time.Millisecond || r.Verified > first {
		t.Errorf("verified %s after acting, want the first MarkVerified's, at most %s", r.Verified, first)
	}
	if again := w.Stop(); again != r {
		t.Error("a second Stop returned another receipt")
	}
	var none *Watch
	none.MarkActed()
	none.MarkVerified()
	none.Unverified()
	if none.Stop() != nil {
		t.Error("a nil watch returned a receipt")
	}
}

// TestWatchUnverified: an operation that fails after a check passed clears
// the verification: the receipt says none.
func TestWatchUnverified(t *testing.T) {
	w := StartWatch(nil, true, "")
	w.MarkVerified()
	w.Unverified()
	if r := w.Stop(); r.Verified != 0 {
		t.Errorf("verified %s after Unverified", r.Verified)
	}
}
