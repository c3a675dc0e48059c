package proc

import (
	"context"
	"errors"
	"time"

	"github.com/safe-restart/safe-restart/ipcguard"
)

// pollStep bounds one wait in poll(2) or one /proc re-check, so that
// cancellation and progress are seen promptly.
const pollStep = 100 * time.Millisecond

// waitExited waits up to d for every process in procs to exit and returns
// those verified still alive. A process counts as exited when its pidfd
// polls readable (the whole thread group has exited: a zombie has), when it
// is gone from /proc, or when its pid now names another process. Without
// pidfds (Linux < 5.3) it re-reads /proc every pollStep. progress, if not
// nil, is called about every progressEvery with the survivors and the time
// waited so far.
func waitExited(ctx context.Context, procRoot string, procs []ipcguard.Proc, d time.Duration,
	progress func(alive []ipcguard.Proc, waited time.Duration),
) ([]ipcguard.Proc, error) {
	start := time.Now()
	w := newExitWatch(procRoot, procs)
	defer w.close()
	lastProgress := start
	for {
		alive := w.alive()
		if len(alive) == 0 {
			return nil, nil
		}
		left := d - time.Since(start)
		if left <= 0 {
			return w.verified(), nil
		}
		if err := ctx.Err(); err != nil {
			return w.verified(), err
		}
		if progress != nil && time.Since(lastProgress) >= progressEvery {
			progress(alive, time.Since(start))
			lastProgress = time.Now()
		}
		if err := w.wait(min(left, pollStep)); err != nil {
			return w.verified(), err
		}
	}
}

// progressEvery is how often a long wait reports its survivors.
const progressEvery = 5 * time.Second

// exitWatch tracks processes through pidfds, or /proc where there are none.
type exitWatch struct {
	procRoot string
	procs    []ipcguard.Proc
	fds      []int  // pidfd per process, -1 when watched through /proc
	exited   []bool // known to have exited
}

func newExitWatch(procRoot string, procs []ipcguard.Proc) *exitWatch {
	w := &exitWatch{procRoot: procRoot, procs: procs, fds: make([]int, len(procs)), exited: make([]bool, len(procs))}
	for i, p := range procs {
		w.fds[i] = -1
		fd, err := PidfdOpen(p.PID)
		switch {
		case errors.Is(err, errNoSuchProcess):
			w.exited[i] = true
		case err == nil:
			w.fds[i] = fd
		}
		// A pidfd opened on a reused pid would watch the wrong process:
		// check the identity after opening.
		if !w.exited[i] && !SameAlive(procRoot, p) {
			w.exited[i] = true
		}
	}
	return w
}

// alive returns the processes not yet known to have exited.
func (w *exitWatch) alive() []ipcguard.Proc {
	var out []ipcguard.Proc
	for i, p := range w.procs {
		if !w.exited[i] {
			out = append(out, p)
		}
	}
	return out
}

// verified re-checks the survivors through /proc, so that escalation acts
// only on processes verified alive (README.md invariant 2).
func (w *exitWatch) verified() []ipcguard.Proc {
	for i, p := range w.procs {
		if !w.exited[i] && !SameAlive(w.procRoot, p) {
			w.exited[i] = true
		}
	}
	return w.alive()
}

// wait blocks up to d for a pidfd to become readable, then updates exited;
// processes without a pidfd are re-read from /proc.
func (w *exitWatch) wait(d time.Duration) error {
	var fds []int
	var idx []int
	for i, fd := range w.fds {
		if !w.exited[i] && fd >= 0 {
			fds, idx = append(fds, fd), append(idx, i)
		}
	}
	ready, err := pollReadable(fds, d, len(fds) < len(w.alive()))
	if err != nil {
		return err
	}
	for k, r := range ready {
		if r {
			w.exited[idx[k]] = true
		}
	}
	for i, fd := range w.fds {
		if !w.exited[i] && fd < 0 && !SameAlive(w.procRoot, w.procs[i]) {
			w.exited[i] = true
		}
	}
	return nil
}

func (w *exitWatch) close() {
	for _, fd := range w.fds {
		if fd >= 0 {
			CloseFD(fd)
		}
	}
}

// SameAlive reports whether p is still the same live process.
func SameAlive(procRoot string, p ipcguard.Proc) bool {
	now, err := Same(procRoot, p)
	return err == nil && now.Alive()
}

// WaitExited waits up to d for every process in procs to exit and returns
// those verified still alive (see waitExited); 0 only looks.
func WaitExited(ctx context.Context, procRoot string, procs []ipcguard.Proc, d time.Duration) ([]ipcguard.Proc, error) {
	return waitExited(ctx, RootOr(procRoot), procs, d, nil)
}
