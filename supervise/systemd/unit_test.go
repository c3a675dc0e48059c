package systemd

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/server"
)

func TestServiceOfCGroup(t *testing.T) {
	for cg, want := range map[string]string{
		"/system.slice/apache2.service":                               "apache2.service",
		"/system.slice/system-apache2.slice/apache2@www.service":      "apache2@www.service",
		"/system.slice/apache2.service/sub":                           "",
		"/user.slice/user-0.slice/user@0.service/app.slice/x.service": "",
		"/user.slice/user-1000.slice/user@1000.service":               "",
		"/user.slice/user-0.slice/session-3.scope":                    "",
		"/":   "",
		"":    "",
		"/..": "",
	} {
		if got := serviceOfCGroup(cg); got != want {
			t.Errorf("serviceOfCGroup(%q) = %q, want %q", cg, got, want)
		}
	}
}

func TestParseShow(t *testing.T) {
	u := &Unit{Name: "nginx.service"}
	err := u.parseShow("Id=nginx.service\nLoadState=loaded\nActiveState=active\nSubState=running\nMainPID=42\n" +
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
	p, err := server.LookupProfile("apache2")
	if err != nil {
		t.Fatal(err)
	}
	u, err := FindUnit(context.Background(), UnitQuery{Profile: p, Name: "apache2", ProcRoot: root, Log: zerolog.Nop()}, nil)
	if u != nil || err != nil {
		t.Errorf("FindUnit without systemd = %+v, %v", u, err)
	}
}

// TestBeforeStepQueuesStop checks when a stop's ladder tells systemd
// first, with a fake systemctl that records its arguments: before a
// signal systemd counts as a failure if the master dies of it (SIGKILL; a
// service file's daemon may not handle USR1), not before the built-in
// server's graceful signal or TERM, and before the first step when
// Restart=always or on-success restarts even a clean exit; once.
func TestBeforeStepQueuesStop(t *testing.T) {
	apache, err := server.LookupProfile("apache2")
	if err != nil {
		t.Fatal(err)
	}
	nginx, err := server.LookupProfile("nginx")
	if err != nil {
		t.Fatal(err)
	}
	file := server.Profile{Name: "myapp", Kind: "service"}
	tests := []struct {
		p       server.Profile
		restart string
		steps   []syscall.Signal
		calls   int
	}{
		{apache, "on-abort", []syscall.Signal{syscall.SIGWINCH, syscall.SIGTERM}, 0},
		{apache, "on-abort", []syscall.Signal{syscall.SIGWINCH, syscall.SIGKILL, syscall.SIGKILL}, 1},
		{apache, "no", []syscall.Signal{syscall.SIGKILL}, 1},
		{apache, "always", []syscall.Signal{syscall.SIGWINCH, syscall.SIGTERM}, 1},
		{apache, "on-abort", []syscall.Signal{syscall.SIGQUIT}, 1}, // not Apache's graceful stop: it dumps core
		{nginx, "on-failure", []syscall.Signal{syscall.SIGQUIT, syscall.SIGTERM}, 0},
		{nginx, "on-success", []syscall.Signal{syscall.SIGQUIT}, 1},
		{file, "on-failure", []syscall.Signal{syscall.SIGUSR1}, 1},
		{file, "on-failure", []syscall.Signal{syscall.SIGINT, syscall.SIGHUP}, 0},
	}
	for _, tt := range tests {
		dir := t.TempDir()
		record := filepath.Join(dir, "calls")
		fake := filepath.Join(dir, "systemctl")
		if err := os.WriteFile(fake, []byte("#!/bin/sh\necho \"$*\" >> "+record+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		u := &Unit{Name: "x.service", Restart: tt.restart, systemctl: fake}
		before := u.BeforeStep(tt.p, zerolog.Nop())
		for _, s := range tt.steps {
			if err := before(context.Background(), proc.Step{Signal: s}); err != nil {
				t.Fatal(err)
			}
		}
		data, _ := os.ReadFile(record)
		calls := strings.Count(string(data), "\n")
		if calls != tt.calls || (calls == 1 && strings.TrimSpace(string(data)) != "--no-ask-password stop --no-block -- x.service") {
			t.Errorf("%s, Restart=%s, steps %v: systemctl calls %q, want %d stop --no-block", tt.p.Name, tt.restart, tt.steps, data, tt.calls)
		}
	}
}

// TestIsMainInside: safe-restart run as one of the unit's own commands
// never counts the master as the unit's to stop through a job (the job
// would wait for this very command), and asks systemctl nothing.
func TestIsMainInside(t *testing.T) {
	u := &Unit{Name: "apache2.service", MainPID: 7, Inside: true, systemctl: "/nonexistent"}
	if main, err := u.IsMain(context.Background(), "/proc", ipcguardProc(7)); main || err != nil {
		t.Errorf("isMain inside the unit = %v, %v", main, err)
	}
	var none *Unit
	if main, err := none.IsMain(context.Background(), "/proc", ipcguardProc(7)); main || err != nil {
		t.Errorf("isMain without a unit = %v, %v", main, err)
	}
	out := &Unit{Name: "apache2.service", systemctl: "/nonexistent"}
	if _, err := out.IsMain(context.Background(), "/proc", ipcguardProc(7)); !errors.Is(err, ErrServiceManager) {
		t.Errorf("isMain with systemctl failing: %v, want ErrServiceManager (the stop is refused)", err)
	}
}

func ipcguardProc(pid int) ipcguard.Proc { return ipcguard.Proc{PID: pid} }
