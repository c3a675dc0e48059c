package proc

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/ipcguard"
)

// fakeTree is a process tree whose members exit on the signals they obey.
// Signal 0 in a member's list means it exits when the master does (an
// Apache child told by its master to finish).
type fakeTree struct {
	obeys  map[int][]syscall.Signal // pid -> signals that make it exit
	exited map[int]bool
	reused map[int]bool // pid now names another process
	sent   []string
}

func (f *fakeTree) ops() ladderOps {
	return ladderOps{
		signal: func(_ string, p ipcguard.Proc, sig syscall.Signal) error {
			if f.reused[p.PID] {
				return fmt.Errorf("send: %w", ErrPIDReused)
			}
			f.sent = append(f.sent, fmt.Sprintf("%s->%d", SigName(sig), p.PID))
			for _, s := range f.obeys[p.PID] {
				if s == sig {
					f.exited[p.PID] = true
				}
			}
			if f.exited[p.PID] {
				for pid, sigs := range f.obeys {
					if len(sigs) > 0 && sigs[0] == 0 {
						f.exited[pid] = true
					}
				}
			}
			return nil
		},
		wait: func(_ context.Context, _ string, procs []ipcguard.Proc, _ time.Duration, _ func([]ipcguard.Proc, time.Duration)) ([]ipcguard.Proc, error) {
			var alive []ipcguard.Proc
			for _, p := range procs {
				if !f.exited[p.PID] {
					alive = append(alive, p)
				}
			}
			return alive, nil
		},
	}
}

var apacheLadder = Ladder{{Signal: syscall.SIGWINCH, Wait: 30 * time.Second}, {Signal: syscall.SIGTERM, Wait: 10 * time.Second},
	{Signal: syscall.SIGKILL, Wait: 5 * time.Second, All: true}}

func TestLadder(t *testing.T) {
	master, child, orphan := ipcguard.Proc{PID: 10, StartTicks: 1}, ipcguard.Proc{PID: 11, StartTicks: 2}, ipcguard.Proc{PID: 12, StartTicks: 3}
	tests := []struct {
		name     string
		members  []ipcguard.Proc
		obeys    map[int][]syscall.Signal
		reused   map[int]bool
		wantSent []string
		wantErr  error
	}{
		{"exits on the graceful step", []ipcguard.Proc{master, child},
			map[int][]syscall.Signal{10: {syscall.SIGWINCH}, 11: {0}},
			nil, []string{"SIGWINCH->10"}, nil},
		{"ignores WINCH, escalates to TERM", []ipcguard.Proc{master},
			map[int][]syscall.Signal{10: {syscall.SIGTERM}},
			nil, []string{"SIGWINCH->10", "SIGTERM->10"}, nil},
		{"an event orphan ignores TERM and needs KILL", []ipcguard.Proc{master, orphan},
			map[int][]syscall.Signal{10: {syscall.SIGWINCH}, 12: {syscall.SIGKILL}},
			nil, []string{"SIGWINCH->10", "SIGKILL->12"}, nil},
		{"pid reused mid-ladder: never signalled, no escalation", []ipcguard.Proc{master},
			map[int][]syscall.Signal{}, map[int]bool{10: true}, nil, ErrPIDReused},
		{"survives everything", []ipcguard.Proc{master},
			map[int][]syscall.Signal{}, nil, []string{"SIGWINCH->10", "SIGTERM->10", "SIGKILL->10"}, ErrStillAlive},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeTree{obeys: tt.obeys, exited: map[int]bool{}, reused: tt.reused}
			_, err := apacheLadder.Run(context.Background(), LadderRun{Master: master, Members: tt.members,
				Log: zerolog.New(zerolog.NewTestWriter(t)), ops: f.ops()})
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			if !reflect.DeepEqual(f.sent, tt.wantSent) {
				t.Errorf("sent %v, want %v", f.sent, tt.wantSent)
			}
		})
	}
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]syscall.Signal{"15": syscall.SIGTERM, "TERM": syscall.SIGTERM, "sigterm": syscall.SIGTERM,
		"WINCH": syscall.SIGWINCH, "SIGUSR1": syscall.SIGUSR1} {
		if got, err := ParseSignal(in); err != nil || got != want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0", "65", "NOPE", "SIG"} {
		if _, err := ParseSignal(bad); err == nil {
			t.Errorf("ParseSignal(%q) accepted", bad)
		}
	}
}

func TestParseLadder(t *testing.T) {
	l, err := ParseLadder("WINCH:30s, TERM:10s,9:5s:all")
	if err != nil || !reflect.DeepEqual(l, apacheLadder) {
		t.Fatalf("ParseLadder = %v, %v; want %v", l, err, apacheLadder)
	}
	for _, bad := range []string{"", " ", "TERM", "TERM:0s", "TERM:x", "NOPE:1s", "TERM:1s:some", "TERM:1s:all:x",
		"STOP:1s", "TERM:10s,TSTP:1s", "19:1s", "CONT:1s", "CHLD:1s,KILL:1s", "32:1s", "33:1s"} {
		if _, err := ParseLadder(bad); err == nil {
			t.Errorf("ParseLadder(%q) accepted", bad)
		}
	}
}

// TestLadderLinger: after the graceful step, once every child has exited,
// a master that lingers (Apache's, which looks at its children once a
// second) is sent TERM and the step ends there; while a child still
// works, or a child forked after the tree was recorded does (found by
// reading the tree again), nothing more is sent until the step's wait
// ends, and the ladder climbs as without the linger.
func TestLadderLinger(t *testing.T) {
	master, child := ipcguard.Proc{PID: 10, StartTicks: 1, State: 'S'}, ipcguard.Proc{PID: 11, StartTicks: 2, State: 'S'}
	late := ipcguard.Proc{PID: 12, StartTicks: 3, State: 'S'}
	for _, c := range []struct {
		name       string
		childExits bool // on the master's WINCH
		tree       []ipcguard.Proc
		wantSent   []string
		wantSteps  int
	}{
		{"children gone: TERM ends the master's wait", true, []ipcguard.Proc{master}, []string{"SIGWINCH->10", "SIGTERM->10"}, 1},
		{"a child still works: the ladder climbs", false, []ipcguard.Proc{master, child}, []string{"SIGWINCH->10", "SIGTERM->10", "SIGKILL->11"}, 3},
		{"a child forked since works: the ladder climbs", true, []ipcguard.Proc{master, child, late}, []string{"SIGWINCH->10", "SIGTERM->10", "SIGKILL->12"}, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			exited := map[int]bool{}
			var sent []string
			ops := ladderOps{
				signal: func(_ string, p ipcguard.Proc, sig syscall.Signal) error {
					sent = append(sent, fmt.Sprintf("%s->%d", SigName(sig), p.PID))
					switch {
					case sig == syscall.SIGWINCH && c.childExits:
						exited[child.PID] = true
					case sig == syscall.SIGTERM && p.PID == master.PID, sig == syscall.SIGKILL:
						exited[p.PID] = true
					}
					return nil
				},
				wait: func(_ context.Context, _ string, procs []ipcguard.Proc, _ time.Duration, _ func([]ipcguard.Proc, time.Duration)) ([]ipcguard.Proc, error) {
					var alive []ipcguard.Proc
					for _, p := range procs {
						if !exited[p.PID] {
							alive = append(alive, p)
						}
					}
					return alive, nil
				},
			}
			tree := func() ([]ipcguard.Proc, error) {
				var out []ipcguard.Proc
				for _, p := range c.tree {
					if exited[p.PID] {
						p.State = 'Z'
					}
					out = append(out, p)
				}
				return out, nil
			}
			reps, err := apacheLadder.Run(context.Background(), LadderRun{Master: master, Members: []ipcguard.Proc{master, child},
				Linger: &Linger{After: syscall.SIGWINCH, Send: syscall.SIGTERM, Tree: tree}, Log: zerolog.Nop(), ops: ops})
			if err != nil || len(reps) != c.wantSteps || !reflect.DeepEqual(sent, c.wantSent) {
				t.Fatalf("Run: %d steps, sent %v, err %v; want %d steps, sent %v", len(reps), sent, err, c.wantSteps, c.wantSent)
			}
		})
	}
}
