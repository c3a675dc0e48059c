//go:build linux

package supervise

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/safe-restart/safe-restart/ipcguard"
)

// trialCloneflags are the namespaces the trial runs in.
const trialCloneflags = unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS

// runTrial runs one trial of spec (see trial) and judges it.
func (o StartOptions) runTrial(ctx context.Context, spec trialSpec, rc RunConfig, k trialer) (*TrialReport, error) {
	start := time.Now()
	t, err := startTrial(spec)
	if err != nil {
		return nil, err
	}
	defer t.end() // idempotent: ended below before the trial's time is taken
	rep := &TrialReport{Dirs: spec.Dirs, Listeners: []string{}}
	deadline := start.Add(or(o.Timeout, 20*time.Second))
	ready, err := t.await(ctx, deadline, func(m trialMsg) bool { return m.Ready || m.Setup != "" })
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: %w", errSandbox, err)
	case ready.Setup != "":
		return nil, fmt.Errorf("%w: %s", errSandbox, ready.Setup)
	}
	rep.ReadOnly = ready.ReadOnly
	o.Log.Info().Strs("argv", spec.Argv).Strs("overlays", spec.Dirs).Bool("read_only", rep.ReadOnly).Msg("trial start of the new configuration in private namespaces")
	ls, err := o.watchTrial(ctx, t, rc, k, deadline)
	t.end()
	rep.Elapsed = time.Since(start) // from the fork to the namespaces' end
	if err != nil {
		return rep, err
	}
	rep.Ran, rep.Listeners = true, addrs(ls)
	o.Log.Info().Strs("listeners", rep.Listeners).Dur("elapsed", rep.Elapsed).Msg("trial start succeeded: the new configuration runs")
	return rep, nil
}

// watchTrial waits until the trial's master has started and its listeners
// accept, and returns them; it fails at once on a line of error severity
// in the trial's logs, a starter that failed, or a master that exited.
func (o StartOptions) watchTrial(ctx context.Context, t *trialProc, rc RunConfig, k trialer, deadline time.Time) ([]Listener, error) {
	fail := func(why, logged string) error {
		return &TrialError{Server: o.Profile.Name, Why: why, Lines: o.Profile.causeLines(logged)}
	}
	var seen *ipcguard.Proc
	for {
		logged := t.logged()
		if o.Profile.haltsStart(logged) {
			return nil, fail("fatal lines in its logs", logged)
		}
		if t.starter != nil && t.starter.Exit != 0 {
			return nil, fail(fmt.Sprintf("its start command exited %d", t.starter.Exit), logged)
		}
		m, err := FromPIDFile(t.procRoot(), t.path(rc.PidFile), o.Profile.Binary)
		switch {
		case err == nil:
			seen = &m
			ls, err := t.listeners(m)
			if err == nil && (k.trialStarted(logged, m) || logFilePath(rc.ServerRoot, rc.ErrorLog) == "") {
				return ls, nil
			}
		case seen != nil:
			return nil, fail(fmt.Sprintf("its master (pid %d in the trial) exited", seen.PID), logged)
		case t.starter != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, ErrStalePIDFile):
			return nil, fail(err.Error(), logged)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			why := fmt.Sprintf("not started within %s", or(o.Timeout, 20*time.Second))
			return nil, fail(errors.Join(errors.New(why), ctx.Err()).Error(), logged)
		}
		t.wait(readyPoll)
	}
}

// trialProc is a running trial: its init, the pipe to its stdin (closing
// it ends the trial), and what it reported.
type trialProc struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	msgs    chan trialMsg
	starter *trialMsg
	spec    trialSpec
	ended   bool
}

// startTrial starts the trial's init: this program, re-executed in new
// namespaces, which builds the sandbox and runs spec's starter.
func startTrial(spec trialSpec) (*trialProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errSandbox, err)
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = []string{trialEnv + "=" + string(specJSON)}
	// No Pdeathsig: it follows the thread that forked, which the Go
	// runtime may end (see dialAll). The init ends when its stdin reaches
	// EOF, which this process's exit also brings.
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: trialCloneflags}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%w: start %s in new namespaces: %w", errSandbox, self, err)
	}
	t := &trialProc{cmd: cmd, stdin: stdin, msgs: make(chan trialMsg, 4), spec: spec}
	go func() {
		defer close(t.msgs)
		dec := json.NewDecoder(stdout)
		for {
			var m trialMsg
			if dec.Decode(&m) != nil {
				return
			}
			t.msgs <- m
		}
	}()
	return t, nil
}

// await returns the first message that want accepts.
func (t *trialProc) await(ctx context.Context, deadline time.Time, want func(trialMsg) bool) (trialMsg, error) {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		select {
		case m, ok := <-t.msgs:
			if !ok {
				return trialMsg{}, fmt.Errorf("the trial's init exited (%v)", t.cmd.Wait())
			}
			if want(m) {
				return m, nil
			}
		case <-timer.C:
			return trialMsg{}, errors.New("the trial's init did not answer in time")
		case <-ctx.Done():
			return trialMsg{}, ctx.Err()
		}
	}
}

// wait waits up to d for the starter's report.
func (t *trialProc) wait(d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case m, ok := <-t.msgs:
		if ok && m.Started {
			t.starter = &m
		}
	case <-timer.C:
	}
}

// end ends the trial: its init is killed, and with it (PID 1 of its
// namespace) every process of the trial; the namespaces, the overlays'
// tmpfs and the IPC objects go with the last of them.
// A second call does nothing.
func (t *trialProc) end() {
	if t.ended {
		return
	}
	t.ended = true
	t.stdin.Close()
	_ = t.cmd.Process.Kill()
	_ = t.cmd.Wait()
}

// procRoot is the trial's own /proc, seen from here.
func (t *trialProc) procRoot() string {
	return filepath.Join("/proc", strconv.Itoa(t.cmd.Process.Pid), "root", "proc")
}

// path is path as the trial sees it, seen from here (path's directory
// resolved first: an absolute symlink on the way would lead back here).
func (t *trialProc) path(path string) string {
	if dir, err := filepath.EvalSymlinks(filepath.Dir(path)); err == nil {
		path = filepath.Join(dir, filepath.Base(path))
	}
	return filepath.Join("/proc", strconv.Itoa(t.cmd.Process.Pid), "root", path)
}

// logged is what the trial wrote (every text file in its overlays: the
// error log, the virtual hosts' logs), then its starter's output.
func (t *trialProc) logged() string {
	var b strings.Builder
	for i := range t.spec.Dirs {
		upper := t.path(filepath.Join(trialStage(i), "upper"))
		_ = filepath.WalkDir(upper, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return nil
			}
			if text, ok := readText(p); ok {
				b.WriteString(text)
				b.WriteString("\n")
			}
			return nil
		})
	}
	if t.starter != nil {
		b.WriteString(t.starter.Output)
	}
	return b.String()
}

// readText returns a file's text, at most maxLogRead bytes; ok is false
// for a file that holds binary data (a cache, a shared memory file).
func readText(path string) (string, bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxLogRead))
	if err != nil || strings.ContainsRune(string(data[:min(len(data), 512)]), 0) {
		return "", false
	}
	return string(data), true
}

// listeners returns the trial master's listening sockets once each accepts
// a connection made inside the trial's network namespace.
func (t *trialProc) listeners(m ipcguard.Proc) ([]Listener, error) {
	listening, err := readListening(filepath.Join("/proc", strconv.Itoa(t.cmd.Process.Pid)))
	if err != nil {
		return nil, err
	}
	ls := listenersOf(t.procRoot(), m.PID, listening)
	if len(ls) == 0 {
		return nil, errors.New("the trial's master holds no listening socket yet")
	}
	return ls, t.dialAll(ls)
}

// dialAll connects to every listener from inside the trial's network
// namespace, on a thread locked to a goroutine that joins the namespace
// and then returns to its own; a thread that cannot return is never
// unlocked, so the runtime ends it with the goroutine. A unix socket is
// reached through the trial's root.
func (t *trialProc) dialAll(ls []Listener) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			done <- err
			return
		}
		defer home.Close()
		ns, err := os.Open(filepath.Join("/proc", strconv.Itoa(t.cmd.Process.Pid), "ns", "net"))
		if err != nil {
			done <- err
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- os.NewSyscallError("setns", err)
			return
		}
		err = dialEach(ls, t.path)
		if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		done <- err
	}()
	return <-done
}

// dialEach connects to each listener and closes the connection at once.
func dialEach(ls []Listener, unixPath func(string) string) error {
	for _, l := range ls {
		network, addr := l.network(), dialable(l.Addr)
		if network == "unix" && strings.HasPrefix(addr, "/") {
			addr = unixPath(addr)
		}
		c, err := net.DialTimeout(network, addr, time.Second)
		if err != nil {
			return fmt.Errorf("listener %s does not accept: %w", l.Addr, err)
		}
		c.Close()
	}
	return nil
}
