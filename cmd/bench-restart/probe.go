//go:build linux

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/safe-restart/safe-restart/internal/prober"
	"github.com/safe-restart/safe-restart/supervise/verify"
)

// result is what one restart cost the prober and the clients.
type result struct {
	took                      time.Duration // from the command to verified serving
	ok, refused, reset, other int
	gap                       time.Duration // longest time without a successful answer
	// what the concurrent keep-alive clients saw: requests answered,
	// connections refused, requests failed otherwise, and keep-alive
	// connections the server closed between two requests (the client
	// reconnects, as browsers do), in all and at most for one client
	clientOK, clientRefused, clientFailed int
	clientClosed, clientClosedMax         int
	// receipt is safe-restart's own account of the same restart (nil for
	// the server's own methods).
	receipt *verify.Receipt
}

func (r result) String() string {
	return fmt.Sprintf("took %s, ok %d, refused %d, reset %d, other %d, longest gap %s; clients ok %d, refused %d, failed %d, closed %d (at most %d per client)",
		r.took.Round(time.Millisecond), r.ok, r.refused, r.reset, r.other, r.gap.Round(time.Millisecond),
		r.clientOK, r.clientRefused, r.clientFailed, r.clientClosed, r.clientClosedMax)
}

// clients is how many concurrent keep-alive clients load the server
// during a measure, besides the prober.
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
	// endpoint is the address and path the keep-alive clients request.
	endpoint() (addr, path string)
}

// load runs n keep-alive clients that each send requests until stop is
// closed, counting into res under mu.
func load(t target, n int, res *result, mu *sync.Mutex, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	addr, path := t.endpoint()
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := keepAlive{addr: addr, path: path}
			defer c.close()
			closed := 0
			for {
				select {
				case <-stop:
					mu.Lock()
					res.clientClosedMax = max(res.clientClosedMax, closed)
					mu.Unlock()
					return
				default:
				}
				outcome := c.get()
				mu.Lock()
				switch outcome {
				case "ok":
					res.clientOK++
				case "refused":
					res.clientRefused++
				case "closed":
					res.clientClosed++
					closed++
				default:
					res.clientFailed++
				}
				mu.Unlock()
			}
		}()
	}
	return &wg
}

// keepAlive is a client that sends its requests on one connection for as
// long as the server keeps it open.
type keepAlive struct {
	addr, path string
	c          net.Conn
	r          *bufio.Reader
}

// get sends one request, on a new connection when it holds none, and
// classifies the outcome: "ok", "refused" (the connection), "closed" (a
// kept connection the server closed before answering: the client's
// retry case), or as prober.GET does.
func (k *keepAlive) get() string {
	fresh := k.c == nil
	if fresh {
		c, err := net.DialTimeout("tcp", k.addr, time.Second)
		if err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) {
				return "refused"
			}
			return "other"
		}
		k.c, k.r = c, bufio.NewReader(c)
	}
	_ = k.c.SetDeadline(time.Now().Add(2 * time.Second))
	resp, err := k.exchange()
	if err != nil {
		k.close()
		outcome := prober.Classify(err)
		if !fresh && outcome == "reset" {
			return "closed"
		}
		return outcome
	}
	if resp.Close {
		k.close()
	}
	if resp.StatusCode != 200 {
		return "other"
	}
	return "ok"
}

// exchange writes the request and reads the whole response.
func (k *keepAlive) exchange() (*http.Response, error) {
	if _, err := io.WriteString(k.c, "GET "+k.path+" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(k.r, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return nil, err
	}
	return resp, nil
}

func (k *keepAlive) close() {
	if k.c != nil {
		k.c.Close()
		k.c = nil
	}
}

// measure probes the server around one method, under the load of the
// concurrent clients: 200 ms before, the method until the server answers
// again, and 200 ms after. It times m.do and the wait for an answer; m.stop,
// if set, runs before, probed but not timed.
func measure(s target, m method) (result, error) {
	var res result
	if m.prepare != nil {
		if err := m.prepare(); err != nil {
			return res, fmt.Errorf("prepare: %w", err)
		}
	}
	var mu sync.Mutex
	stop := make(chan struct{})
	clientsDone := load(s, clients, &res, &mu, stop)
	p := prober.Start(s.probe)
	time.Sleep(200 * time.Millisecond)
	var err error
	if m.stop != nil {
		err = m.stop()
	}
	start := time.Now()
	lastReceipt = nil
	if err == nil {
		err = m.do()
	}
	res.receipt = lastReceipt
	if err == nil {
		err = s.waitServing(30 * time.Second)
	}
	took := time.Since(start)
	time.Sleep(200 * time.Millisecond)
	res.setProbes(p.Stop())
	close(stop)
	clientsDone.Wait()
	reapZombies()
	res.took = took
	return res, err
}

// setProbes takes the prober's counts.
func (r *result) setProbes(c prober.Counts) {
	r.ok, r.refused, r.reset, r.other, r.gap = c.OK, c.Refused, c.Reset, c.Other, c.Gap
}

// probeOnly probes target (HOST:PORT/PATH, the path / by default) as
// measure does, without the clients, until SIGINT or SIGTERM, then prints
// what it saw on stdout: the demo runs it beside safe-restart to set its
// receipt against the benchmark's prober.
func probeOnly(target string) {
	addr, path, _ := strings.Cut(target, "/")
	path = "/" + path
	p := prober.Start(func() string { return prober.GET(addr, path) })
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	<-sigs
	var res result
	res.setProbes(p.Stop())
	fmt.Printf("prober (GET %s every %s): ok %d, refused %d, reset %d, other %d, longest gap %s\n",
		path, prober.Every, res.ok, res.refused, res.reset, res.other, res.gap.Round(time.Millisecond))
}
