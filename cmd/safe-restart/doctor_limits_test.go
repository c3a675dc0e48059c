package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/safe-restart/safe-restart/internal/apachetest"
	"github.com/safe-restart/safe-restart/internal/fpmtest"
	"github.com/safe-restart/safe-restart/internal/nstest"
	"github.com/safe-restart/safe-restart/supervise/doctor"
	"github.com/safe-restart/safe-restart/supervise/proc"
)

// TestDoctorForkFailed: an ondemand php-fpm pool whose master sits in a
// pids cgroup with room for one more process, under concurrent slow
// requests: the master forks one worker, then fork fails (EAGAIN) and
// php-fpm logs it. Doctor names the fork failure with that line.
func TestDoctorForkFailed(t *testing.T) {
	nstest.RequireBinaries(t, fpmtest.Binary)
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	cg := newCgroup(t, "pids", "pids.max") // before the server: its cleanup runs after the server's
	fpm := fpmtest.Start(t, fpmtest.Config{PM: "ondemand", Children: 8, Pool: "pm.process_idle_timeout = 60s"})
	cg.enter(t, fpm.MasterPID())
	cg.write(t, "pids.max", strconv.FormatInt(cg.value(t, "pids.current", "")+1, 10))
	stop := load(t, 4, func() bool {
		c, _, err := fpm.Get("/slow.php?ms=300")
		return err == nil && c == 200
	})
	waitLog(t, fpm.ErrorLogText, "fork() failed")
	stop()
	if n := cg.value(t, "pids.events", "max"); n == 0 {
		t.Errorf("the pids cgroup counted no refused fork, yet php-fpm logged one")
	}
	_, rep := doctorJSON(t, fpmService, "--conf", fpm.ConfPath, "--root", doctorRoot(t, "no"), "--state-dir", t.TempDir())
	if got := checks(rep); !slices.Equal(got, []string{"log-fork-failed"}) {
		t.Fatalf("findings %v\n%s", got, dump(rep))
	}
	f := finding(t, rep, "log-fork-failed")
	last := lastLine(fpm.ErrorLogText(), "fork() failed")
	if f.Severity != doctor.Critical || !strings.HasSuffix(f.Evidence[1], last) {
		t.Fatalf("want %q as evidence:\n%s", last, dump(rep))
	}
	t.Logf("php-fpm logged: %s", last)
}

// TestDoctorOOMKill: php-fpm's master and worker in a memory cgroup
// capped at 64 MiB; a request that builds a 256 MiB string gets its
// worker killed by the kernel's OOM killer, which php-fpm logs as a
// SIGKILL exit. Doctor reads the cgroup's OOM-kill count and names it,
// with that line as evidence.
func TestDoctorOOMKill(t *testing.T) {
	nstest.RequireBinaries(t, fpmtest.Binary)
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	cg := newMemCgroup(t, 64<<20)
	fpm := fpmtest.Start(t, fpmtest.Config{Children: 1, Pool: "php_admin_value[memory_limit] = -1",
		Scripts: map[string]string{"hog.php": `<?php echo strlen(str_repeat("x", (int)$_GET['mb'] << 20));`}})
	for _, p := range fpm.Processes() {
		cg.enter(t, p.PID)
	}
	if c, body, err := fpm.Get("/hog.php?mb=256"); err == nil && c == 200 {
		t.Fatalf("a 256 MiB string was built under a 64 MiB cap: %q", body)
	}
	waitLog(t, fpm.ErrorLogText, "exited on signal 9 (SIGKILL)")
	kills := cg.value(t, "memory.oom_control", "oom_kill")
	if kills == 0 {
		t.Fatalf("the worker got SIGKILL, yet the cgroup counts no OOM kill:\n%s", fpm.ErrorLogText())
	}
	_, rep := doctorJSON(t, fpmService, "--conf", fpm.ConfPath, "--root", doctorRoot(t, "no"), "--state-dir", t.TempDir())
	if got := checks(rep); !slices.Equal(got, []string{"oom-kill"}) {
		t.Fatalf("findings %v\n%s", got, dump(rep))
	}
	f := finding(t, rep, "oom-kill")
	ev := strings.Join(f.Evidence, "\n")
	last := lastLine(fpm.ErrorLogText(), "exited on signal 9")
	for _, want := range []string{fmt.Sprintf("oom_kill %d in %s", kills, filepath.Join(cg.dir, "memory.oom_control")), last} {
		if !strings.Contains(ev, want) {
			t.Errorf("evidence lacks %q:\n%s", want, dump(rep))
		}
	}
	if f.Severity != doctor.Critical {
		t.Errorf("severity %s", f.Severity)
	}
	t.Logf("%s: %s", f.Summary, ev)
}

// TestDoctorKeysRising: Apache with the key-leaking module and libgomp,
// logging through rotatelogs (a piped ErrorLog: the reloads cannot be
// counted), reloaded twice by `kill -USR1` on the master, as a cron line
// or a hand would: no sample records those reloads, yet doctor sees the
// keys rise between its samples and names the rate, critical with libgomp
// mapped.
func TestDoctorKeysRising(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl", "apxs", "rotatelogs")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	gomp, err := filepath.Glob("/usr/lib/*/libgomp.so.1")
	if err != nil || len(gomp) == 0 {
		t.Fatalf("no libgomp.so.1 (gcc's runtime, installed with apache2-dev's toolchain): %v", err)
	}
	rotatelogs, err := nstest.LookPath("rotatelogs")
	if err != nil {
		t.Fatal(err)
	}
	logs := t.TempDir()
	piped := fmt.Sprintf("ErrorLog \"|%s %s/error.%%Y%%m%%d.log 86400\"", rotatelogs, logs)
	srv := apachetest.Start(t, apachetest.Config{MPM: "prefork", Extra: buildKeyLeak(t) + "\nLoadFile " + gomp[0] + "\n" + piped})
	args := []string{"apache2", "--conf", srv.ConfPath, "--root", doctorRoot(t, "no"), "--state-dir", t.TempDir()}
	_, rep := doctorJSON(t, args...)
	if got := checks(rep); !slices.Equal(got, []string{"libgomp"}) {
		t.Fatalf("before any reload: %v\n%s", got, dump(rep))
	}
	const reloads = 2
	master := srv.MasterPID()
	for range reloads {
		usr1AndWaitKeys(t, srv, master)
	}
	_, rep = doctorJSON(t, args...)
	if got := checks(rep); !slices.Equal(got, []string{"pthread-keys-rising"}) {
		t.Fatalf("after %d kill -USR1: %v\n%s", reloads, got, dump(rep))
	}
	f := finding(t, rep, "pthread-keys-rising")
	ev := strings.Join(f.Evidence, "\n")
	for _, want := range []string{fmt.Sprintf("+%d keys in ", keysPerLoad*reloads), "(reloads logged: unknown)", "keys per day", "keys left: about ", "libgomp is mapped"} {
		if !strings.Contains(ev, want) {
			t.Errorf("evidence lacks %q:\n%s", want, dump(rep))
		}
	}
	if f.Severity != doctor.Critical {
		t.Errorf("severity %s with libgomp mapped", f.Severity)
	}
	t.Logf("%s: %s", f.Summary, ev)
}

// usr1AndWaitKeys sends SIGUSR1 to the master itself and waits until the
// new configuration load leaked its keys and the server answers again.
func usr1AndWaitKeys(t *testing.T, srv *apachetest.Server, master int) {
	t.Helper()
	before, err := proc.PthreadKeysInUse("/proc", master)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(master, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		keys, err := proc.PthreadKeysInUse("/proc", master)
		if err != nil {
			t.Fatalf("master %d after SIGUSR1: %v", master, err)
		}
		if c, _, err := srv.Get("/"); keys >= before+keysPerLoad && err == nil && c == 200 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("master %d: %d keys, %d before SIGUSR1; no new load", master, keys, before)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lastLine returns the last line of text that contains mark, trimmed.
func lastLine(text, mark string) string {
	var last string
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, mark) {
			last = strings.TrimSpace(line)
		}
	}
	return last
}
