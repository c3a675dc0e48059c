package supervise

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/rs/zerolog"
)

func TestServiceOfCGroup(t *testing.T) {
	for cg, want := range map[string]string{
		"/system.slice/apache2.service":                               "apache2.service",
		"/system.slice/apache2.service/sub":                           "apache2.service",
		"/system.slice/system-apache2.slice/apache2@www.service":      "apache2@www.service",
		"/user.slice/user-0.slice/user@0.service/app.slice/x.service": "x.service",
		"/user.slice/user-0.slice/session-3.scope":                    "",
		"/": "",
		"":  "",
	} {
		if got := serviceOfCGroup(cg); got != want {
			t.Errorf("serviceOfCGroup(%q) = %q, want %q", cg, got, want)
		}
	}
}

func TestParseShow(t *testing.T) {
	u := &Unit{Name: "nginx.service"}
	err := u.parseShow("LoadState=loaded\nActiveState=active\nSubState=running\nMainPID=42\n" +
		"ControlGroup=/system.slice/nginx.service\nType=forking\nRestart=no\nPIDFile=/run/nginx.pid\n")
	if err != nil {
		t.Fatal(err)
	}
	want := Unit{Name: "nginx.service", Load: "loaded", Active: "active", Sub: "running", MainPID: 42,
		CGroup: "/system.slice/nginx.service", Type: "forking", Restart: "no", PIDFile: "/run/nginx.pid"}
	if *u != want {
		t.Errorf("parseShow = %+v, want %+v", *u, want)
	}
	for _, bad := range []string{"LoadState=loaded\nMainPID=x\n", "LoadState=loaded\nMainPID=-1\n", "ActiveState=active\n", ""} {
		if err := (&Unit{Name: "x.service"}).parseShow(bad); err == nil {
			t.Errorf("parseShow(%q) accepted", bad)
		}
	}
}

// TestFindUnitNeedsSystemd: on a host whose PID 1 is not systemd (these
// tests, a container), no unit is looked for and systemctl never runs.
func TestFindUnitNeedsSystemd(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "1", "comm"), []byte("tini\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := LookupProfile("apache2")
	if err != nil {
		t.Fatal(err)
	}
	u, err := FindUnit(context.Background(), UnitQuery{Profile: p, Name: "apache2", ProcRoot: root, Log: zerolog.Nop()}, nil)
	if u != nil || err != nil {
		t.Errorf("FindUnit without systemd = %+v, %v", u, err)
	}
}

// TestBeforeStepQueuesStop checks when a stop's ladder tells systemd
// first, with a fake systemctl that records its arguments: before SIGKILL
// (a failure systemd would restart on Restart=on-abort), or before the
// first step when Restart=always restarts even a clean exit; once.
func TestBeforeStepQueuesStop(t *testing.T) {
	tests := []struct {
		restart string
		steps   []syscall.Signal
		calls   int
	}{
		{"on-abort", []syscall.Signal{syscall.SIGWINCH, syscall.SIGTERM}, 0},
		{"on-abort", []syscall.Signal{syscall.SIGWINCH, syscall.SIGKILL, syscall.SIGKILL}, 1},
		{"no", []syscall.Signal{syscall.SIGKILL}, 1},
		{"always", []syscall.Signal{syscall.SIGWINCH, syscall.SIGTERM}, 1},
		{"on-success", []syscall.Signal{syscall.SIGQUIT}, 1},
	}
	for _, tt := range tests {
		dir := t.TempDir()
		record := filepath.Join(dir, "calls")
		fake := filepath.Join(dir, "systemctl")
		if err := os.WriteFile(fake, []byte("#!/bin/sh\necho \"$*\" >> "+record+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		u := &Unit{Name: "apache2.service", Restart: tt.restart, systemctl: fake}
		var queued bool
		before := u.beforeStep(&queued, zerolog.Nop())
		for _, s := range tt.steps {
			if err := before(context.Background(), Step{Signal: s}); err != nil {
				t.Fatal(err)
			}
		}
		data, _ := os.ReadFile(record)
		lines := strings.Fields(strings.ReplaceAll(string(data), "\n", " | "))
		calls := strings.Count(string(data), "\n")
		if calls != tt.calls || (calls == 1 && strings.TrimSpace(string(data)) != "stop --no-block -- apache2.service") {
			t.Errorf("Restart=%s, steps %v: systemctl calls %q, want %d stop --no-block", tt.restart, tt.steps, lines, tt.calls)
		}
	}
	inside := &Unit{Name: "apache2.service", Restart: "always", Inside: true, systemctl: "/nonexistent"}
	var queued bool
	if err := inside.beforeStep(&queued, zerolog.Nop())(context.Background(), Step{Signal: syscall.SIGKILL}); err != nil || queued {
		t.Errorf("a unit's own command queued its stop job (%v): systemd would wait for this very command", err)
	}
}
