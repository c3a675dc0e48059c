package main

import (
	"bufio"
	"io"
	"sync"
	"time"
)

// batchWriter batches log lines. zerolog writes each event with one Write;
// a reap of 32000 sets logs 32000 events, and one write(2) each cost as much
// as the removals themselves. Lines are flushed when 64 KiB accumulate,
// every flushEvery, and at Close. A SIGKILL can lose what was not flushed:
// at most flushEvery's worth of lines.
type batchWriter struct {
	mu   sync.Mutex
	buf  *bufio.Writer
	stop chan struct{}
	done chan struct{}
}

const flushEvery = 100 * time.Millisecond

func newBatchWriter(w io.Writer) *batchWriter {
	b := &batchWriter{buf: bufio.NewWriterSize(w, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go b.flusher()
	return b
}

func (b *batchWriter) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *batchWriter) flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	_ = b.buf.Flush()
}

func (b *batchWriter) flusher() {
	defer close(b.done)
	tick := time.NewTicker(flushEvery)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			b.flush()
		case <-b.stop:
			b.flush()
			return
		}
	}
}

// Close flushes what is buffered and stops the flusher. It must be called
// once.
func (b *batchWriter) Close() error {
	close(b.stop)
	<-b.done
	return nil
}
