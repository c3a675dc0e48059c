package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/safe-restart/safe-restart/internal/nstest"
	"github.com/safe-restart/safe-restart/internal/proctest"
)

// runProc is `safe-restart run ...` running as a subprocess (the test
// binary with mainEnv), its JSON log lines collected.
type runProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  bytes.Buffer
	done chan struct{}
	code int
}

func (r *runProc) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.log.Write(p)
}

// startRun starts argv (the test binary, or a wrapper such as unshare,
// then the arguments) with mainEnv; the cleanup SIGKILLs it if still
// running.
func startRun(t *testing.T, argv ...string) *runProc {
	t.Helper()
	r := &runProc{t: t, done: make(chan struct{})}
	r.cmd = exec.Command(argv[0], argv[1:]...)
	r.cmd.Env = append(os.Environ(), mainEnv+"=1")
	r.cmd.Stdout, r.cmd.Stderr = r, r
	r.cmd.WaitDelay = 5 * time.Second // its child may hold the pipes after it exited
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := r.cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			r.code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				r.code = 128 + int(ws.Signal())
			}
		}
		close(r.done)
	}()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			_ = r.cmd.Process.Kill()
			<-r.done
		}
	})
	return r
}

// safeRestartRun starts safe-restart run with args.
func safeRestartRun(t *testing.T, args ...string) *runProc {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return startRun(t, append([]string{self, "--log-format", "json", "run"}, args...)...)
}

// logEvent is one JSON log line of safe-restart.
type logEvent map[string]any

func (e logEvent) str(k string) string { s, _ := e[k].(string); return s }
func (e logEvent) num(k string) float64 {
	f, _ := e[k].(float64)
	return f
}

// time is the line's timestamp.
func (e logEvent) time(t *testing.T) time.Time {
	t.Helper()
	at, err := time.Parse(logTimeFormat, e.str("time"))
	if err != nil {
		t.Fatalf("log line %v: %v", e, err)
	}
	return at
}

// events returns the JSON log lines written so far.
func (r *runProc) events() []logEvent {
	r.mu.Lock()
	text := r.log.String()
	r.mu.Unlock()
	var out []logEvent
	for _, line := range strings.Split(text, "\n") {
		var ev logEvent
		if json.Unmarshal([]byte(line), &ev) == nil {
			out = append(out, ev)
		}
	}
	return out
}

// output is everything the process wrote.
func (r *runProc) output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.log.String()
}

// await waits until n log lines match, failing after timeout, and
// returns them.
func (r *runProc) await(n int, timeout time.Duration, what string, match func(logEvent) bool) []logEvent {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var got []logEvent
		for _, ev := range r.events() {
			if match(ev) {
				got = append(got, ev)
			}
		}
		if len(got) >= n {
			return got
		}
		select {
		case <-r.done:
			r.t.Fatalf("safe-restart run exited (code %d) before %d× %s:\n%s", r.code, n, what, r.output())
		default:
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("no %d× %s within %s:\n%s", n, what, timeout, r.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// event matches log lines by their event field (and message prefix).
func event(name, msgPrefix string) func(logEvent) bool {
	return func(e logEvent) bool { return e.str("event") == name && strings.HasPrefix(e.str("message"), msgPrefix) }
}

// exit waits for the process's exit code.
func (r *runProc) exit(timeout time.Duration) int {
	r.t.Helper()
	select {
	case <-r.done:
		return r.code
	case <-time.After(timeout):
		r.t.Fatalf("safe-restart run still running after %s:\n%s", timeout, r.output())
	}
	return -1
}

// TestRunCrashLoop: a child that exits 3 at once is restarted after
// 50 ms, 100 ms, 200 ms (the backoff doubling, read from the log fields;
// each next start line is at least that long after its restart line: the
// wait happened), then safe-restart gives up at --max-restarts 3 with a
// final line and exits with the child's code.
func TestRunCrashLoop(t *testing.T) {
	r := safeRestartRun(t, "--state-dir", t.TempDir(), "--max-restarts", "3", "--backoff", "50ms", "--max-backoff", "10s",
		"--", "sh", "-c", "exit 3")
	if code := r.exit(30 * time.Second); code != 3 {
		t.Fatalf("exit %d, want the child's 3:\n%s", code, r.output())
	}
	var starts, exits int
	var backoffs []float64
	var restartAt, startAt []time.Time
	var last logEvent
	for _, ev := range r.events() {
		switch ev.str("event") {
		case "start":
			starts++
			startAt = append(startAt, ev.time(t))
		case "exit":
			if ev.num("exit_code") != 3 {
				t.Errorf("exit line without the child's code 3: %v", ev)
			}
			exits++
		case "restart":
			backoffs = append(backoffs, ev.num("backoff"))
			restartAt = append(restartAt, ev.time(t))
		}
		if ev.str("event") != "" {
			last = ev
		}
	}
	if starts != 4 || exits != 4 || len(backoffs) != 3 || backoffs[0] != 50 || backoffs[1] != 100 || backoffs[2] != 200 {
		t.Errorf("%d starts, %d exits, backoffs %v ms; want 4, 4, [50 100 200]:\n%s", starts, exits, backoffs, r.output())
	}
	for i := 0; i < len(restartAt) && i+1 < len(startAt); i++ {
		// A lower bound only; the log's times are truncated to the
		// millisecond, hence the 1 ms.
		waited, delay := startAt[i+1].Sub(restartAt[i]), time.Duration(backoffs[i])*time.Millisecond
		if waited+time.Millisecond < delay {
			t.Errorf("start %d came %s after restart line %d, less than its backoff %s", i+2, waited, i+1, delay)
		}
	}
	if last.str("event") != "give-up" || !strings.Contains(last.str("reason"), "4 times in a row (limit --max-restarts 3)") {
		t.Errorf("last event %v, want the give-up line naming the limit", last)
	}
}

// reapCmd leaves an orphan: the inner sh starts `sleep 0.3` in the
// background and exits, so the sleep is re-parented to the nearest
// reaper, where it exits and waits as a zombie; the child then waits for
// TERM.
var reapCmd = []string{"--", "sh", "-c", `sh -c "sleep 0.3 &"; exec sleep 300`}

// TestRunReapsOrphans: as a subreaper (a plain process) and as PID 1 of
// a PID namespace, safe-restart reaps the re-parented zombie and logs it;
// TERM then stops the child with the ladder and safe-restart exits with
// the child's status, 128+SIGTERM.
func TestRunReapsOrphans(t *testing.T) {
	nstest.RequireBinaries(t, "unshare")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--log-format", "json", "run", "--state-dir", t.TempDir()}, reapCmd...)
	for _, tc := range []struct {
		name   string
		argv   []string
		asPID1 bool
	}{
		{"subreaper", append([]string{self}, args...), false},
		{"pid 1", append([]string{"unshare", "--pid", "--fork", "--mount-proc", self}, args...), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := startRun(t, tc.argv...)
			r.await(1, 20*time.Second, "reap of the orphaned sleep", func(e logEvent) bool {
				return e.str("event") == "reap" && e.str("comm") == "sleep"
			})
			target := r.cmd.Process.Pid
			if tc.asPID1 {
				kids := proctest.ChildrenOf(target) // unshare's child: safe-restart, PID 1 of its namespace
				if len(kids) != 1 {
					t.Fatalf("unshare has %d children, want 1", len(kids))
				}
				target = kids[0].PID
				if !strings.Contains(r.output(), "running as PID 1") {
					t.Errorf("safe-restart did not run as PID 1:\n%s", r.output())
				}
			}
			if err := syscall.Kill(target, syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if code := r.exit(20 * time.Second); code != 128+int(syscall.SIGTERM) {
				t.Fatalf("exit %d, want 143 (the child killed by TERM):\n%s", code, r.output())
			}
			r.await(1, time.Second, "exit line naming SIGTERM", func(e logEvent) bool {
				return e.str("event") == "exit" && e.str("signal") == "SIGTERM"
			})
		})
	}
}

// TestRunUsage: bad command lines exit 2 naming the problem, before
// anything starts.
func TestRunUsage(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"run"}, "run takes the command after --"},
		{[]string{"run", "sleep", "1"}, "run takes the command after --"},
		{[]string{"run", "--max-memory", "lots", "--", "true"}, `bad --max-memory "lots"`},
		{[]string{"run", "--restart", "sometimes", "--", "true"}, `bad --restart "sometimes"`},
		{[]string{"run", "--backoff", "0s", "--", "true"}, "bad restart settings"},
		{[]string{"run", "--conf", "/etc/x.conf", "--", "true"}, "--conf and --ladder need --service"},
		{[]string{"run", "--service", "nosuch", "--", "true"}, "unknown service"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			// The state dir right after "run", before any "--".
			args := append([]string{tt.args[0], "--state-dir", t.TempDir()}, tt.args[1:]...)
			code, _, errOut := runCLI(t, args...)
			if code != exitUsage || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errOut, exitUsage, tt.want)
			}
		})
	}
}
