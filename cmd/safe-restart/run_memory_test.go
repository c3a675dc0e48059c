package main

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/safe-restart/safe-restart/internal/fpmtest"
	"github.com/safe-restart/safe-restart/internal/nstest"
)

// leakScript leaks per request, as a buggy extension would: FFI::new with
// owned = false and persistent = true allocates (and zeroes: the pages
// are touched) with the worker's malloc, never freed at the request's
// end. php-fpm frees a request's own memory, statics included, between
// requests; this survives until the worker exits.
const leakScript = `<?php
FFI::new("char[" . (int)($_GET['kb'] ?? 128) * 1024 . "]", false, true);
usleep(5000);
echo "fpmtest ok leak ", getmypid(), "\n";
`

// TestRunMemoryWatchdogRecyclesLeakingPool: a php-fpm pool that leaks
// 128 KiB per request, under load, in a memory cgroup capped at 192 MiB.
// The watchdog (--max-memory 64M, sampled every 200 ms) recycles it with
// php-fpm's USR2, logged with the figures, before the cap is reached:
// the cgroup counts no OOM kill and never hit its limit, php-fpm logs no
// fork() failure, and every request through the test is served (the
// re-exec keeps the listening socket: clients queue, none is refused).
func TestRunMemoryWatchdogRecyclesLeakingPool(t *testing.T) {
	nstest.RequireBinaries(t, fpmtest.Binary)
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	const limit, maxMemory = 192 << 20, 64 << 20
	cg := newMemCgroup(t, limit)
	srv := fpmtest.Prepare(t, fpmtest.Config{Scripts: map[string]string{"leak.php": leakScript}, Pool: "php_admin_value[ffi.enable] = 1"})
	// The child puts itself into the capped group, then becomes php-fpm:
	// every generation it forks is charged there.
	enter := `echo $$ > ` + filepath.Join(cg.dir, "cgroup.procs") + ` && exec "$0" "$@"`
	r := safeRestartRun(t, "--service", fpmService, "--conf", srv.ConfPath, "--state-dir", t.TempDir(),
		"--max-memory", "64M", "--memory-interval", "200ms", "--graceful-timeout", "10s",
		"--", "sh", "-c", enter, srv.Bin, "-F", "-y", srv.ConfPath)
	r.await(1, 30*time.Second, "serving", event("serving", ""))
	master := srv.MasterPID()
	stop := load(t, 2, func() bool {
		c, body, err := srv.Get("/leak.php?kb=128")
		return err == nil && c == 200 && strings.HasPrefix(body, "fpmtest ok leak")
	})
	recycles := r.await(3, 120*time.Second, "3 verified recycles", event("recycle", "recycle verified"))
	ok, failed := stop()
	for _, ev := range recycles {
		pss, max := ev.num("pss_bytes"), ev.num("max_memory_bytes")
		if max != maxMemory || pss <= max || pss >= limit || ev.str("signal") != "SIGUSR2" || !strings.Contains(ev.str("reason"), "over --max-memory 64.0 MiB") {
			t.Errorf("recycle line %v: want SIGUSR2, PSS over 64 MiB and under the cap, and the reason", ev)
		}
	}
	if failed != 0 || ok < 100 {
		t.Errorf("%d requests served, %d failed; want none failed", ok, failed)
	}
	if n := cg.value(t, "memory.oom_control", "oom_kill"); n != 0 {
		t.Errorf("the cgroup counted %d OOM kills", n)
	}
	if n := cg.value(t, "memory.failcnt", ""); n != 0 {
		t.Errorf("the cgroup hit its limit %d times (max usage %d of %d)", n, cg.value(t, "memory.max_usage_in_bytes", ""), limit)
	}
	if log := srv.ErrorLogText(); strings.Contains(log, "fork() failed") || strings.Contains(log, "Cannot allocate memory") {
		t.Errorf("php-fpm ran out of memory:\n%s", log)
	}
	if srv.MasterPID() != master {
		t.Errorf("master %d, was %d: a recycle re-executes it in place; safe-restart run said:\n%s", srv.MasterPID(), master, r.output())
	}
	t.Logf("%d requests served, %d recycles; cgroup max usage %d MiB of %d", ok, len(recycles), cg.value(t, "memory.max_usage_in_bytes", "")>>20, limit>>20)
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := r.exit(30 * time.Second); code != 0 {
		t.Fatalf("exit %d after TERM:\n%s", code, r.output())
	}
}
