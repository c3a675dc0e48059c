//go:build linux

package trial

import (
	"cmp"
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
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/server"
	"github.com/safe-restart/safe-restart/supervise/sock"
	"github.com/safe-restart/safe-restart/supervise/verify"
)

// trialCloneflags are the namespaces the trial runs in.
const trialCloneflags = unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS

// runTrial runs one trial of spec (see trial) and judges it. A sandbox
// this host cannot build is errSandbox; an interrupted trial ctx's error;
// anything else that keeps it from a verdict a *Error (refused).
func (o Options) runTrial(ctx context.Context, spec trialSpec, rc server.RunConfig, k server.Trialer) (*Report, error) {
	start := time.Now()
	t, err := startTrial(spec, rc)
	if err != nil {
		return nil, err
	}
	defer t.end() // idempotent: ended below before the trial's time is taken
	rep := &Report{Dirs: spec.Dirs, Listeners: []string{}}
	deadline := start.Add(cmp.Or(o.Timeout, 20*time.Second))
	ready, err := t.await(ctx, deadline, func(m trialMsg) bool { return m.Ready || m.Setup != "" })
	switch {
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case err != nil:
		return nil, &Error{Server: o.Profile.Name, Why: "the trial could not be judged: " + err.Error()}
	case ready.Setup != "":
		return nil, fmt.Errorf("%w: %s", errSandbox, ready.Setup)
	}
	t.emptied = ready.Emptied
	o.Log.Info().Strs("argv", spec.Argv).Strs("overlays", spec.Dirs).Msg("trial start of the new configuration in private namespaces")
	ls, err := o.watchTrial(ctx, t, rc, k, deadline)
	t.end()
	rep.Elapsed = time.Since(start) // from the fork to the namespaces' end
	if err != nil {
		return rep, err
	}
	rep.Ran, rep.Listeners = true, sock.Addrs(ls)
	o.Log.Info().Strs("listeners", rep.Listeners).Dur("elapsed", rep.Elapsed).Msg("trial start succeeded: the new configuration runs")
	return rep, nil
}

// watchTrial waits until the trial's master has started and its listeners
// accept, and returns them; it fails at once on a line that ends a start
// in the trial's logs, a starter that failed, a master that exited, or an
// init that is gone.
func (o Options) watchTrial(ctx context.Context, t *trialProc, rc server.RunConfig, k server.Trialer, deadline time.Time) ([]sock.Listener, error) {
	fail := func(why, logged string) error {
		return &Error{Server: o.Profile.Name, Why: why, Lines: o.Profile.CauseLines(logged)}
	}
	var seen *ipcguard.Proc
	// A log the trial can read: not syslog or a pipe, nor a stream such as
	// /dev/stderr (its lines leave with the detached master's stdio).
	errorLog := verify.LogFilePath(rc.ServerRoot, rc.ErrorLog)
	logIsFile := errorLog != "" && !isBelow(errorLog, "/dev") && !isBelow(errorLog, "/proc")
	for {
		if t.initGone {
			return nil, fail("the trial could not be judged: its init exited", t.starterOutput())
		}
		logged := t.logged()
		if o.Profile.HaltsStart(logged) {
			return nil, fail("fatal lines in its logs", logged)
		}
		if t.starter != nil && t.starter.Exit != 0 {
			return nil, fail(fmt.Sprintf("its start command exited %d", t.starter.Exit), logged)
		}
		m, err := proc.FromPIDFile(t.procRoot(), t.pidFile, o.Profile.Binary)
		switch {
		case err == nil:
			seen = &m
			if k.TrialStarted(logged, m) || !logIsFile {
				if ls, err := t.listeners(m); err == nil {
					return ls, nil
				}
			}
		case seen != nil:
			return nil, fail(fmt.Sprintf("its master (pid %d in the trial) exited", seen.PID), logged)
		case t.starter != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, proc.ErrStalePIDFile):
			return nil, fail(err.Error(), logged)
		case t.starter != nil && !t.serverLeft(o.Profile.Binary):
			return nil, fail("its start command exited 0 and no process of the server is left", logged)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if time.Now().After(deadline) {
			return nil, fail(fmt.Sprintf("it had not finished its start after --timeout %s (a slow start? a larger --timeout gives it longer)", cmp.Or(o.Timeout, 20*time.Second)), logged)
		}
		t.wait(verify.ReadyPoll)
	}
}

// trialProc is a running trial: its init, the pipe to its stdin (closing
// it ends the trial), what it reported, and where its files are.
type trialProc struct {
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	msgs     chan trialMsg
	starter  *trialMsg
	initGone bool // its init exited: its /proc/PID paths are no longer its
	ended    bool
	spec     trialSpec
	// pidFile is the server's pidfile seen through the trial's root.
	pidFile string
	// sizes are the sizes of the files under the overlaid directories when
	// the trial began: what a copy of one holds up to there is not the
	// trial's; emptied are the files its init emptied (all theirs is).
	sizes   map[string]int64
	emptied []string
}

// startTrial starts the trial's init: this program (/proc/self/exe, the
// very binary running, even if a package upgrade replaced its file),
// re-executed in new namespaces, which builds the sandbox and runs spec's
// starter. The spec goes over a pipe at trialSpecFD.
func startTrial(spec trialSpec, rc server.RunConfig) (*trialProc, error) {
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	sizes := verify.FileSizes(spec.Dirs, true) // before the trial can write
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errSandbox, err)
	}
	defer pw.Close()
	cmd := exec.Command("/proc/self/exe") //permit:exec.Command the trial's init in new namespaces, waited for by watchTrial
	cmd.Args = []string{"safe-restart-trial"}
	cmd.Env = []string{trialEnv + "=" + strconv.Itoa(trialSpecFD)}
	cmd.ExtraFiles = []*os.File{pr} // fd 3
	// No Pdeathsig: it follows the thread that forked, which the Go
	// runtime may end (see dialAll). The init ends when its stdin reaches
	// EOF, which this process's exit also brings.
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: trialCloneflags}
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	var stdin io.WriteCloser
	if err == nil {
		stdin, err = cmd.StdinPipe()
	}
	if err == nil {
		err = cmd.Start()
	}
	pr.Close() // the init's copy is its own now: a dead init breaks the pipe
	if err != nil {
		if stdin != nil {
			stdin.Close()
		}
		return nil, fmt.Errorf("%w: start a process in new namespaces: %w", errSandbox, err)
	}
	t := &trialProc{cmd: cmd, stdin: stdin, msgs: make(chan trialMsg, 4), spec: spec, sizes: sizes}
	t.pidFile = t.inRoot(spec.pidFile(rc.PidFile))
	go t.read(stdout)
	_ = pw.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, werr := pw.Write(specJSON); werr != nil {
		t.end()
		return nil, fmt.Errorf("%w: send the trial its spec: %w", errSandbox, werr)
	}
	return t, nil
}

// read passes the init's messages on, and closes msgs at its end.
func (t *trialProc) read(stdout io.Reader) {
	defer close(t.msgs)
	dec := json.NewDecoder(stdout)
	for {
		var m trialMsg
		if dec.Decode(&m) != nil {
			return
		}
		t.msgs <- m
	}
}

// await returns the first message that want accepts.
func (t *trialProc) await(ctx context.Context, deadline time.Time, want func(trialMsg) bool) (trialMsg, error) {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		select {
		case m, ok := <-t.msgs:
			if !ok {
				t.initGone = true
				return trialMsg{}, errors.New("its init exited before its sandbox was built")
			}
			if want(m) {
				return m, nil
			}
		case <-timer.C:
			return trialMsg{}, errors.New("its sandbox was not built in time")
		case <-ctx.Done():
			return trialMsg{}, ctx.Err()
		}
	}
}

// wait waits up to d for the starter's report, or the init's end.
func (t *trialProc) wait(d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case m, ok := <-t.msgs:
		switch {
		case !ok:
			t.initGone = true
		case m.Started:
			t.starter = &m
		}
	case <-timer.C:
	}
}

// end ends the trial: its init is killed, and with it (PID 1 of its
// namespace) every process of the trial; the namespaces, the overlays'
// tmpfs and the IPC objects go with the last of them. A second call does
// nothing.
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
func (t *trialProc) procRoot() string { return t.inRoot("/proc") }

// inRoot is path (resolved in the trial: no symlink of this machine's
// own /dev/shm or overlays is followed on the way) seen from here.
func (t *trialProc) inRoot(path string) string {
	return filepath.Join("/proc", strconv.Itoa(t.cmd.Process.Pid), "root", path)
}

// pidFile is the server's pidfile with its directory resolved as the
// trial's overlays were (see trialSpec.Remove).
func (s trialSpec) pidFile(path string) string {
	if len(s.Remove) > 0 {
		return s.Remove[0]
	}
	return path
}

// rlimitNoFile is pid's RLIMIT_NOFILE (prlimit(2)), zero when unknown.
func rlimitNoFile(pid int) [2]uint64 {
	var r unix.Rlimit
	if pid <= 0 || unix.Prlimit(pid, unix.RLIMIT_NOFILE, nil, &r) != nil {
		return [2]uint64{}
	}
	return [2]uint64{r.Cur, r.Max}
}

// serverLeft reports whether a process running exe lives in the trial (a
// master that died before writing its pidfile leaves none).
func (t *trialProc) serverLeft(exe string) bool {
	procs, err := ipcguard.ReadProcTable(t.procRoot())
	return err != nil || len(proc.RunningExactly(procs, exe)) > 0
}

// starterOutput is what the starter printed, once it exited.
func (t *trialProc) starterOutput() string {
	if t.starter == nil {
		return ""
	}
	return t.starter.Output
}

// logged is what the trial wrote to its files (the error log, the virtual
// hosts' logs: every text file in its overlays, from where it was when
// the trial began), then its starter's output.
func (t *trialProc) logged() string {
	if t.initGone {
		return t.starterOutput()
	}
	var b strings.Builder
	for i, dir := range t.spec.Dirs {
		upper := t.inRoot(filepath.Join(trialStage(i), "upper"))
		_ = filepath.WalkDir(upper, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return nil
			}
			rel, _ := filepath.Rel(upper, p)
			host := filepath.Join(dir, rel)
			from := t.sizes[host] // a copy holds the file as it was, then the trial's
			if slices.Contains(t.emptied, host) {
				from = 0
			}
			if text, ok := readText(p, from); ok {
				b.WriteString(text)
				b.WriteString("\n")
			}
			return nil
		})
	}
	b.WriteString(t.starterOutput())
	return b.String()
}

// readText returns a file's text from off (from 0 if it is now shorter),
// at most maxLogRead bytes; ok is false for binary data (a cache, a shared
// memory file).
func readText(path string, off int64) (string, bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	text := verify.ReadFrom(f, off)
	return text, !strings.ContainsRune(text[:min(len(text), 512)], 0)
}

// listeners returns the trial master's listening sockets once each accepts
// a connection made inside the trial's network namespace.
func (t *trialProc) listeners(m ipcguard.Proc) ([]sock.Listener, error) {
	listening, err := sock.ReadListening(filepath.Join("/proc", strconv.Itoa(t.cmd.Process.Pid)))
	if err != nil {
		return nil, err
	}
	ls := sock.ListenersOf(t.procRoot(), m.PID, listening)
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
func (t *trialProc) dialAll(ls []sock.Listener) error {
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
		err = dialEach(ls, t.inRoot)
		if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		done <- err
	}()
	return <-done
}

// dialEach connects to each listener and closes the connection at once.
func dialEach(ls []sock.Listener, unixPath func(string) string) error {
	for _, l := range ls {
		network, addr := l.Network(), verify.Dialable(l.Addr)
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
