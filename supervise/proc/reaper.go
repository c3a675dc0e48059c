package proc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/ipcguard"
)

// Reaper owns the waiting for the foreground supervisor's children: the
// child it started (its exit status goes to the supervisor) and, as PID 1
// or a subreaper, every zombie re-parented to this process (each logged).
//
// It never reaps a process of this process's own process group: the
// subprocesses safe-restart runs itself (config tests through os/exec)
// stay in its group, and their exec.Cmd waits for them; the child runs in
// a group of its own, and its workers and their descendants in that one
// or in others of theirs. Limit: a daemon that a config test forked, left
// in safe-restart's group, is not reaped.
type Reaper struct {
	procRoot string
	self     int
	group    int // this process's group
	orphans  bool
	log      zerolog.Logger

	mu    sync.Mutex // held through a spawn, so a sweep never takes the child as an orphan
	watch map[int]chan ExitStatus
}

// NewReaper returns a reaper for this process. orphans says whether it
// also reaps re-parented zombies (as PID 1 or a subreaper).
func NewReaper(procRoot string, orphans bool, log zerolog.Logger) *Reaper {
	return &Reaper{procRoot: procRoot, self: os.Getpid(), group: syscall.Getpgrp(), orphans: orphans, log: log,
		watch: map[int]chan ExitStatus{}}
}

// Spawn runs start (which forks the child and returns its pid) and
// returns the channel that will receive the child's exit status.
func (r *Reaper) Spawn(start func() (int, error)) (int, <-chan ExitStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, err := start()
	if err != nil {
		return 0, nil, err
	}
	ch := make(chan ExitStatus, 1)
	r.watch[pid] = ch
	return pid, ch, nil
}

// Run sweeps on every SIGCHLD (and every second, in case one was merged
// with another) until ctx is done.
func (r *Reaper) Run(ctx context.Context) {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGCHLD)
	defer signal.Stop(sigs)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		r.sweep()
		select {
		case <-ctx.Done():
			return
		case <-sigs:
		case <-tick.C:
		}
	}
}

// sweep collects every exited child it may: the watched ones, then the
// re-parented zombies.
func (r *Reaper) sweep() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for pid, ch := range r.watch {
		ws, done, err := reapNoHang(pid)
		if err != nil {
			r.log.Warn().Err(err).Int("pid", pid).Msg("cannot wait for the child")
			continue
		}
		if done {
			ch <- exitStatusOf(ws)
			delete(r.watch, pid)
		}
	}
	if r.orphans {
		r.reapOrphans()
	}
}

// reapOrphans reaps the zombies re-parented to this process, logging each.
func (r *Reaper) reapOrphans() {
	procs, err := ipcguard.ReadProcTable(r.procRoot)
	if err != nil {
		r.log.Warn().Err(err).Msg("cannot list processes to reap re-parented zombies")
		return
	}
	for _, p := range procs.ByPID {
		if p.PPID != r.self || (p.State != 'Z' && p.State != 'X') || r.watch[p.PID] != nil {
			continue
		}
		if g, err := ReadPGID(r.procRoot, p.PID); err != nil || g == r.group {
			continue // gone meanwhile, or one of safe-restart's own subprocesses
		}
		ws, done, err := reapNoHang(p.PID)
		if err != nil || !done {
			continue
		}
		r.log.Info().Str("event", "reap").Int("pid", p.PID).Str("comm", p.Comm).Str("status", exitStatusOf(ws).String()).
			Msg("reaped a re-parented process that exited")
	}
}

// ReadPGID reads the process group of pid (/proc/PID/stat field 5).
func ReadPGID(procRoot string, pid int) (int, error) {
	data, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	s := string(data)
	end := strings.LastIndexByte(s, ')')
	if end < 0 {
		return 0, fmt.Errorf("%w: /proc/%d/stat: no comm", ipcguard.ErrMalformed, pid)
	}
	f := strings.Fields(s[end+1:])
	if len(f) < 3 {
		return 0, fmt.Errorf("%w: /proc/%d/stat: too few fields", ipcguard.ErrMalformed, pid)
	}
	return strconv.Atoi(f[2])
}

// BecomeReaper makes this process the reaper of its orphaned
// descendants: as PID 1 it already is; otherwise it asks to be their
// subreaper. It reports whether re-parented zombies are this process's to
// reap.
func BecomeReaper(log zerolog.Logger) bool {
	if os.Getpid() == 1 {
		log.Info().Msg("running as PID 1: reaping every re-parented zombie")
		return true
	}
	if err := setChildSubreaper(); err != nil {
		if !errors.Is(err, errors.ErrUnsupported) {
			log.Warn().Err(err).Msg("cannot become a subreaper: re-parented workers go to PID 1")
		}
		return false
	}
	return true
}
