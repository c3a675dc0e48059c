package verify

import (
	"bufio"
	"cmp"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/safe-restart/safe-restart/supervise/sock"
)

// Receipt is what clients saw while an operation acted: safe-restart's
// own probes, a new connection to each address its master listens on every
// Every (for an HTTP server a GET /, else the connection alone), and the
// health check, from the end of the operation's checks to its end.
type Receipt struct {
	Listeners []string      `json:"listeners"`
	Every     time.Duration `json:"every_ns"`
	Probes    int           `json:"probes"`
	// Answered probes got an HTTP answer below 500 (or, for a server that
	// does not speak HTTP, a connection); Refused were refused
	// (ECONNREFUSED: nothing listened); Reset were cut (a reset, or closed
	// before the answer); Failed timed out or got a 5xx.
	Answered int `json:"answered"`
	Refused  int `json:"refused"`
	Reset    int `json:"reset"`
	Failed   int `json:"failed"`
	// HealthChecks is how many health checks ran (none without a health
	// URL), HealthFailed how many failed.
	HealthChecks int `json:"health_checks"`
	HealthFailed int `json:"health_failed"`
	// LongestGap is the longest time in which a listener answered no
	// probe (to the end of the watch; the whole watch for one that never
	// answered).
	LongestGap time.Duration `json:"longest_gap_ns"`
	// Verified is the time from the first signal (or start of the new
	// master) to the moment the new generation was proven to serve (its
	// workers took connections, the health check passed); 0 when it was
	// not.
	Verified time.Duration `json:"until_verified_ns"`
	// Hooks are the hooks a restart ran around a gap it could not avoid.
	Hooks []HookRun `json:"hooks,omitempty"`
}

// HookRun is one hook a restart ran (see server.Hooks).
type HookRun struct {
	Phase   string        `json:"phase"` // "pre-stop" or "post-start"
	Command string        `json:"command"`
	Took    time.Duration `json:"took_ns"`
	Output  string        `json:"output"`
	Error   string        `json:"error,omitempty"`
}

// Clean reports whether no probe went unanswered.
func (r Receipt) Clean() bool {
	return r.Refused == 0 && r.Reset == 0 && r.Failed == 0 && r.HealthFailed == 0
}

// Watch probes a server while an operation acts (see Receipt).
type Watch struct {
	once     sync.Once
	receipt  *Receipt
	began    time.Time
	stop     chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	r        Receipt
	last     []*time.Time // each listener's last answer, or began
	acted    time.Time    // MarkActed's first call; began without one
	verified time.Time    // MarkVerified's first call
}

// ProbeEvery is how often Watch opens a connection to each listener.
const ProbeEvery = 5 * time.Millisecond

// healthEvery is how often Watch runs the health check.
const healthEvery = 50 * time.Millisecond

// StartWatch begins probing listeners (GET / when speaksHTTP) and
// healthURL ("" for none) every ProbeEvery; the operation acts right
// after. Stop ends it.
func StartWatch(listeners []sock.Listener, speaksHTTP bool, healthURL string) *Watch {
	w := &Watch{began: time.Now(), stop: make(chan struct{}), r: Receipt{Listeners: []string{}, Every: ProbeEvery}}
	for _, l := range listeners {
		if slices.Contains(w.r.Listeners, l.Addr) {
			continue // one address, several sockets (SO_REUSEPORT): probed once
		}
		w.r.Listeners = append(w.r.Listeners, l.Addr)
		network, addr := l.Network(), l.Addr
		if network == "tcp" {
			addr = Dialable(addr)
		}
		last := w.began
		w.last = append(w.last, &last)
		w.every(ProbeEvery, func() { w.count(probe(network, addr, speaksHTTP && network == "tcp"), &last) })
	}
	if healthURL != "" {
		w.every(healthEvery, func() {
			err := HTTPGet(healthURL, time.Second)
			w.mu.Lock()
			w.r.HealthChecks++
			if err != nil {
				w.r.HealthFailed++
			}
			w.mu.Unlock()
		})
	}
	return w
}

// MarkActed records that the operation sends its first signal (or starts
// its new master) now: Verified counts from the first call (from the
// watch's start without one). A nil Watch ignores it.
func (w *Watch) MarkActed() { w.markOnce(func(w *Watch) *time.Time { return &w.acted }) }

// MarkVerified records that the new generation was proven to serve now
// (the first call counts; an operation that fails later clears it with
// Unverified). A nil Watch ignores it.
func (w *Watch) MarkVerified() { w.markOnce(func(w *Watch) *time.Time { return &w.verified }) }

// markOnce sets the time field of w returns to now, unless set; a nil
// Watch ignores it.
func (w *Watch) markOnce(field func(*Watch) *time.Time) {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if t := field(w); t.IsZero() {
		*t = time.Now()
	}
}

// Unverified clears MarkVerified: the operation failed after a check
// passed (a new master abandoned, the old one serving on), so the receipt
// says no new generation was verified. A nil Watch ignores it.
func (w *Watch) Unverified() {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.verified = time.Time{}
}

// every runs f every d until Stop (a probe that takes longer delays the
// next, it never overlaps it).
func (w *Watch) every(d time.Duration, f func()) {
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			f()
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
		}
	}()
}

// count adds one probe's outcome; last is its listener's last answer.
func (w *Watch) count(outcome string, last *time.Time) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.r.Probes++
	switch outcome {
	case "answered":
		w.r.Answered++
		w.r.LongestGap = max(w.r.LongestGap, now.Sub(*last))
		*last = now
	case "refused":
		w.r.Refused++
	case "reset":
		w.r.Reset++
	default:
		w.r.Failed++
	}
}

// Stop ends the probes, waiting for those in flight, and returns the
// receipt: the operation ends now. Called again, it returns the same
// receipt; a nil Watch returns nil.
func (w *Watch) Stop() *Receipt {
	if w == nil {
		return nil
	}
	w.once.Do(func() {
		end := time.Now()
		close(w.stop)
		w.wg.Wait()
		w.mu.Lock()
		defer w.mu.Unlock()
		r := w.r
		for _, last := range w.last {
			r.LongestGap = max(r.LongestGap, end.Sub(*last))
		}
		if !w.verified.IsZero() {
			r.Verified = w.verified.Sub(cmp.Or(w.acted, w.began))
		}
		w.receipt = &r
	})
	return w.receipt
}

// probe opens a connection to addr and, with get, sends GET / and reads
// the answer's head; it classifies the outcome: "answered", "refused",
// "reset" or "failed".
func probe(network, addr string, get bool) string {
	c, err := net.DialTimeout(network, addr, time.Second)
	if err != nil {
		return outcomeOf(err)
	}
	defer c.Close()
	if !get {
		return "answered"
	}
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.0\r\nHost: localhost\r\nUser-Agent: safe-restart-receipt\r\n\r\n"); err != nil {
		return outcomeOf(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return outcomeOf(err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return "failed"
	}
	return "answered"
}

// outcomeOf classifies a probe's error.
func outcomeOf(err error) string {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ENOENT):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "reset"
	}
	return "failed"
}
