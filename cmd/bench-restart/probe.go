//go:build linux

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// result is what one restart cost the prober.
type result struct {
	took                      time.Duration // from the command to verified serving
	ok, refused, reset, other int
	gap                       time.Duration // longest time without a successful answer
	// what the concurrent clients saw (each request on a new connection)
	clientOK, clientRefused, clientFailed int
}

func (r result) String() string {
	return fmt.Sprintf("took %s, ok %d, refused %d, reset %d, other %d, longest gap %s; clients ok %d, refused %d, failed %d",
		r.took.Round(time.Millisecond), r.ok, r.refused, r.reset, r.other, r.gap.Round(time.Millisecond),
		r.clientOK, r.clientRefused, r.clientFailed)
}

// clients is how many concurrent clients load the server during a
// measure, besides the prober.
const clients = 50

// target is a server under the benchmark.
type target interface {
	// methods are the ways of restarting it compared.
	methods() []method
	// waitServing waits until it answers again.
	waitServing(d time.Duration) error
	// probe opens a new connection, sends one request and classifies
	// the outcome: "ok", "refused", "reset" or "other".
	probe() string
}

// load runs n clients that each send requests on new connections until
// stop is closed, counting into res under mu.
func load(t target, n int, res *result, mu *sync.Mutex, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				outcome := t.probe()
				mu.Lock()
				switch outcome {
				case "ok":
					res.clientOK++
				case "refused":
					res.clientRefused++
				default:
					res.clientFailed++
				}
				mu.Unlock()
			}
		}()
	}
	return &wg
}

// probeEvery is how often the prober opens a new connection.
const probeEvery = 5 * time.Millisecond

// measure probes the server around one method, under the load of the
// concurrent clients: 200 ms before, the method until the server answers
// again, and 200 ms after. It times m.do and the wait for an answer; m.stop,
// if set, runs before, probed but not timed.
func measure(s target, m method) (result, error) {
	var res result
	var mu sync.Mutex
	stop := make(chan struct{})
	done := make(chan struct{})
	clientsDone := load(s, clients, &res, &mu, stop)
	go func() {
		defer close(done)
		last := time.Now()
		tick := time.NewTicker(probeEvery)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			outcome := s.probe()
			mu.Lock()
			switch outcome {
			case "ok":
				res.ok++
				res.gap = max(res.gap, time.Since(last))
				last = time.Now()
			case "refused":
				res.refused++
			case "reset":
				res.reset++
			default:
				res.other++
			}
			mu.Unlock()
		}
	}()
	time.Sleep(200 * time.Millisecond)
	var err error
	if m.stop != nil {
		err = m.stop()
	}
	start := time.Now()
	if err == nil {
		err = m.do()
	}
	if err == nil {
		err = s.waitServing(30 * time.Second)
	}
	took := time.Since(start)
	time.Sleep(200 * time.Millisecond)
	close(stop)
	<-done
	clientsDone.Wait()
	reapZombies()
	res.took = took
	return res, err
}

// probeGET opens a new connection to addr, sends GET path, and
// classifies the outcome (any status but 200 is "other": a 502 of a
// FastCGI front whose backend is down).
func probeGET(addr, path string) string {
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
		return classify(err)
	}
	resp, err := http.ReadResponse(bufioReader(c), nil)
	if err != nil {
		return classify(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return "other"
	}
	return "ok"
}

func classify(err error) string {
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.EPIPE) {
		return "reset"
	}
	return "other"
}

func bufioReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }
