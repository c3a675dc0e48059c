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
	gap                       time.Duration  // longest time without a successful answer
	loadOK, loadFailed        int            // requests of the concurrent clients
	loadFailures              map[string]int // the clients' failures by outcome
}

func (r result) String() string {
	return fmt.Sprintf("took %s, ok %d, refused %d, reset %d, other %d, longest gap %s; clients: ok %d, failed %d %v",
		r.took.Round(time.Millisecond), r.ok, r.refused, r.reset, r.other, r.gap.Round(time.Millisecond), r.loadOK, r.loadFailed, r.loadFailures)
}

// probeEvery is how often the prober opens a new connection.
const probeEvery = 5 * time.Millisecond

// clients is how many concurrent clients keep requesting (each on a new
// connection) while the prober probes.
var clients = 50

// measure probes the server around one restart, under the load of the
// concurrent clients: 200 ms before, the restart until both listeners
// answer, and 200 ms after.
func measure(s *server, restart func() error) (result, error) {
	res := result{loadFailures: map[string]int{}}
	var mu sync.Mutex
	stop := make(chan struct{})
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				outcome := probe()
				mu.Lock()
				if outcome == "ok" {
					res.loadOK++
				} else {
					res.loadFailed++
					res.loadFailures[outcome]++
				}
				mu.Unlock()
			}
		}()
	}
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
			outcome := probe()
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
	start := time.Now()
	err := restart()
	if err == nil {
		err = s.waitServing(30 * time.Second)
	}
	took := time.Since(start)
	time.Sleep(200 * time.Millisecond)
	close(stop)
	<-done
	wg.Wait()
	reapZombies()
	res.took = took
	return res, err
}

// probe opens a new connection, sends GET /, and classifies the outcome.
func probe() string {
	c, err := net.DialTimeout("tcp", addr1, time.Second)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return "refused"
		}
		return "other"
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "GET /index.html HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
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
