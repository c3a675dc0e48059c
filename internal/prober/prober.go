// Package prober is the benchmark's prober (cmd/bench-restart): a new
// connection every Every, one request on it, its outcome classified, and
// the longest time without an answer. The tests that check safe-restart's
// receipts (supervise/verify.Receipt) run this same prober beside it.
package prober

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// Every is how often the prober opens a new connection.
const Every = 2 * time.Millisecond

// Counts are what a prober saw.
type Counts struct {
	OK, Refused, Reset, Other int
	Gap                       time.Duration // longest time without an "ok"
}

// Prober calls its probe every Every until Stop.
type Prober struct {
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	c    Counts
}

// Start calls probe every Every, counting its outcomes ("ok", "refused",
// "reset", anything else is other), until Stop.
func Start(probe func() string) *Prober {
	p := &Prober{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		last := time.Now()
		tick := time.NewTicker(Every)
		defer tick.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			outcome := probe()
			p.mu.Lock()
			switch outcome {
			case "ok":
				p.c.OK++
				p.c.Gap = max(p.c.Gap, time.Since(last))
				last = time.Now()
			case "refused":
				p.c.Refused++
			case "reset":
				p.c.Reset++
			default:
				p.c.Other++
			}
			p.mu.Unlock()
		}
	}()
	return p
}

// Stop ends the probes, waits for the one in flight and returns the
// counts. It may be called again: it returns the same counts.
func (p *Prober) Stop() Counts {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.c
}

// GET opens a new connection to addr, sends GET path, and classifies the
// outcome (any status but 200 is "other": a 502 of a FastCGI front whose
// backend is down).
func GET(addr, path string) string {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return "refused"
		}
		return "other"
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
		return Classify(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return Classify(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return "other"
	}
	return "ok"
}

// Classify names an exchange's error: "reset" for a connection reset or
// closed before the answer, else "other".
func Classify(err error) string {
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.EPIPE) {
		return "reset"
	}
	return "other"
}
