package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/safe-restart/safe-restart/internal/apachetest"
	"github.com/safe-restart/safe-restart/internal/fpmtest"
	"github.com/safe-restart/safe-restart/internal/nginxtest"
	"github.com/safe-restart/safe-restart/internal/nstest"
	"github.com/safe-restart/safe-restart/internal/proctest"
	"github.com/safe-restart/safe-restart/internal/promtest"
)

// metricsOf runs `safe-restart metrics` with args, wants exit code want,
// lints the output with promtool and returns it parsed (see promtest.Parse).
func metricsOf(t *testing.T, want int, args ...string) map[string]float64 {
	t.Helper()
	code, out, errOut := runCLI(t, append([]string{"metrics"}, args...)...)
	if code != want {
		t.Fatalf("metrics %v: exit %d, want %d\n%s\n%s", args, code, want, out, errOut)
	}
	promtest.Check(t, out)
	return promtest.Parse(t, out)
}

// wantMetric fails the test unless series (`name{label=value,...}`) is
// present in m with the value want.
func wantMetric(t *testing.T, m map[string]float64, series string, want float64) {
	t.Helper()
	if got, ok := m[series]; !ok || got != want {
		t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
	}
}

// TestMetricsApache drives a real Apache through the CLI and reads its
// metrics: the sets a kill -9 of the whole group leaked count as orphaned
// while no master runs, until ipc reap --yes (recorded; its plan is not)
// removes them; after a verified start the server is up with no
// orphan, its reload count follows the CLI's reloads, and the pthread keys
// its master uses grow by what a leaking module (mod_keyleak, built with
// apxs) leaks per reload; each operation's outcome shows, a refused
// reload's exit 3 included, while a dry run and a usage error record
// nothing. A live master that serves nothing (stopped with SIGSTOP) is
// down.
func TestMetricsApache(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl", "apxs", "promtool")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := apachetest.Start(t, apachetest.Config{MPM: "prefork", SysvSem: true, AuthDigest: true, Extra: buildKeyLeak(t)})
	srv.KillGroup9()
	leaked := len(semIDs(t))
	state := t.TempDir()
	args := []string{"apache2", "--conf", srv.ConfPath, "--state-dir", state, "--timeout", "2s"}
	m := metricsOf(t, exitOK, args...)
	wantMetric(t, m, "safe_restart_server_up{service=apache2}", 0)
	wantMetric(t, m, "safe_restart_ipc_orphaned_objects{kind=sem,service=apache2}", float64(leaked))
	wantMetric(t, m, "safe_restart_sysv_sem_sets{}", float64(leaked))
	wantMetric(t, m, "safe_restart_sysv_sem_sets_limit{}", 32000)
	if _, ok := m["safe_restart_master_start_time_seconds{service=apache2}"]; ok || leaked == 0 {
		t.Fatalf("a start time without a master, or no set leaked (%d)", leaked)
	}

	// The plan (no --yes) changes nothing and records nothing; the reap
	// is recorded.
	reap := []string{"ipc", "reap", "--service", "apache2", "--conf", srv.ConfPath, "--state-dir", state}
	if code, out, errOut := runCLI(t, reap...); code != exitOK {
		t.Fatalf("reap plan: exit %d\n%s\n%s", code, out, errOut)
	}
	if _, ok := metricsOf(t, exitOK, args...)["safe_restart_last_operation_exit_code{op=ipc-reap,service=apache2}"]; ok {
		t.Fatal("a reap plan was recorded as an operation")
	}
	if code, out, errOut := runCLI(t, append(reap, "--yes")...); code != exitOK {
		t.Fatalf("reap: exit %d\n%s\n%s", code, out, errOut)
	}
	m = metricsOf(t, exitOK, args...)
	wantMetric(t, m, "safe_restart_ipc_orphaned_objects{kind=sem,service=apache2}", 0)
	wantMetric(t, m, "safe_restart_sysv_sem_sets{}", 0)
	wantMetric(t, m, "safe_restart_last_operation_exit_code{op=ipc-reap,service=apache2}", 0)

	if code, out, errOut := runCLI(t, "start", "apache2", "--conf", srv.ConfPath, "--state-dir", state); code != exitOK {
		t.Fatalf("start: exit %d\n%s\n%s", code, out, errOut)
	}
	masterProc, err := proctest.Stat(srv.MasterPID())
	if err != nil {
		t.Fatal(err)
	}
	master, masterStart := proctest.Of(masterProc), unixSeconds(masterProc.Start)
	m = metricsOf(t, exitOK, args...)
	wantMetric(t, m, "safe_restart_server_up{service=apache2}", 1)
	wantMetric(t, m, "safe_restart_ipc_orphaned_objects{kind=sem,service=apache2}", 0)
	wantMetric(t, m, "safe_restart_reloads_since_master_start{service=apache2}", 0)
	wantMetric(t, m, "safe_restart_master_start_time_seconds{service=apache2}", masterStart)
	wantMetric(t, m, "safe_restart_last_operation_exit_code{op=start,service=apache2}", 0)
	wantMetric(t, m, "safe_restart_last_operation_success{op=start,service=apache2}", 1)
	keys, ok := m["safe_restart_pthread_keys_used{service=apache2}"]
	if !ok || keys < keysPerLoad || keys >= 1024 {
		t.Errorf("pthread keys used %v (present %v), want mod_keyleak's %d or more, below the limit", keys, ok, keysPerLoad)
	}

	for i := 1; i <= 2; i++ {
		if code, out, errOut := runCLI(t, "reload", "apache2", "--conf", srv.ConfPath, "--state-dir", state); code != exitOK {
			t.Fatalf("reload %d: exit %d\n%s\n%s", i, code, out, errOut)
		}
		m = metricsOf(t, exitOK, args...)
		wantMetric(t, m, "safe_restart_reloads_since_master_start{service=apache2}", float64(i))
		// mod_keyleak leaks keysPerLoad keys in the master at each load.
		wantMetric(t, m, "safe_restart_pthread_keys_used{service=apache2}", keys+float64(i*keysPerLoad))
	}
	wantMetric(t, m, "safe_restart_last_operation_success{op=reload,service=apache2}", 1)
	if d := m["safe_restart_last_operation_duration_seconds{op=reload,service=apache2}"]; d <= 0 {
		t.Errorf("reload duration %v, want > 0", d)
	}
	if _, ok := m["safe_restart_last_operation_success{op=start,service=apache2}"]; ok {
		t.Error("the start is still shown as the last operation after reloads")
	}

	// A dry run changes nothing and is not recorded, nor is a usage
	// error: the reload stays the last operation.
	if code, _, errOut := runCLI(t, "stop", "apache2", "--conf", srv.ConfPath, "--state-dir", state, "--dry-run"); code != exitOK {
		t.Fatalf("stop --dry-run: exit %d\n%s", code, errOut)
	}
	if code, _, errOut := runCLI(t, "stop", "apache2", "--conf", srv.ConfPath, "--state-dir", state, "--ladder", "TERM"); code != exitUsage {
		t.Fatalf("stop --ladder TERM: exit %d, want %d (usage)\n%s", code, exitUsage, errOut)
	}
	m = metricsOf(t, exitOK, args...)
	for series := range m {
		if strings.Contains(series, "op=stop") {
			t.Errorf("%s: a dry run or a usage error was recorded as an operation", series)
		}
	}
	wantMetric(t, m, "safe_restart_last_operation_success{op=reload,service=apache2}", 1)
	if !master.Alive() || srv.MasterPID() != master.PID {
		t.Fatal("stop --dry-run or a usage error touched the master")
	}
	// A broken config: the reload is refused (exit 3) and recorded; the
	// status cannot be read while the config is broken (exit 1, status
	// success 0), and the server is untouched.
	good, err := os.ReadFile(srv.ConfPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(srv.ConfPath, append(good, "\nNoSuchDirective on\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCLI(t, "apache2", "--conf", srv.ConfPath, "--state-dir", state); code != exitRefused {
		t.Fatalf("reload with a bad config: exit %d\n%s", code, errOut)
	}
	m = metricsOf(t, exitFailed, args...)
	wantMetric(t, m, "safe_restart_status_success{service=apache2}", 0)
	wantMetric(t, m, "safe_restart_last_operation_exit_code{op=reload,service=apache2}", 3)
	wantMetric(t, m, "safe_restart_last_operation_success{op=reload,service=apache2}", 0)
	if err := os.WriteFile(srv.ConfPath, good, 0o644); err != nil {
		t.Fatal(err)
	}
	m = metricsOf(t, exitOK, args...)
	wantMetric(t, m, "safe_restart_server_up{service=apache2}", 1)
	wantMetric(t, m, "safe_restart_reloads_since_master_start{service=apache2}", 2)
	if !master.Alive() || srv.MasterPID() != master.PID {
		t.Fatal("the refused reload replaced the master")
	}

	// A live master that serves nothing: every process stopped (state T,
	// alive). The master first, so that it forks no child once its
	// children are listed. The kernel may still queue connections; no
	// answer comes.
	procs := []int{master.PID}
	signalAll(t, procs, syscall.SIGSTOP)
	var children []int
	for _, c := range proctest.ChildrenOf(master.PID) {
		children = append(children, c.PID)
	}
	signalAll(t, children, syscall.SIGSTOP)
	procs = append(procs, children...)
	m = metricsOf(t, exitOK, args...)
	signalAll(t, procs, syscall.SIGCONT)
	wantMetric(t, m, "safe_restart_server_up{service=apache2}", 0)
	wantMetric(t, m, "safe_restart_master_start_time_seconds{service=apache2}", masterStart)
	m = metricsOf(t, exitOK, args...)
	wantMetric(t, m, "safe_restart_server_up{service=apache2}", 1)
}

// signalAll sends sig to each pid (processes this test started).
func signalAll(t *testing.T, pids []int, sig syscall.Signal) {
	t.Helper()
	for _, pid := range pids {
		if err := syscall.Kill(pid, sig); err != nil {
			t.Fatalf("%s to %d: %v", sig, pid, err)
		}
	}
}

// TestMetricsTextfile: --textfile replaces the file by a rename (a new
// inode each time, mode 0644, no temporary file left beside it), and its
// content parses; a directory that does not exist fails, exit 1.
func TestMetricsTextfile(t *testing.T) {
	nstest.RequireBinaries(t, "promtool")
	dir := t.TempDir()
	path := filepath.Join(dir, "safe-restart.prom")
	state := t.TempDir()
	var inodes []uint64
	for range 2 {
		if code, _, errOut := runCLI(t, "metrics", "--state-dir", state, "--textfile", path); code != exitOK {
			t.Fatalf("exit %d\n%s", code, errOut)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("mode %v, want 0644 (node_exporter runs as another user)", fi.Mode().Perm())
		}
		inodes = append(inodes, fi.Sys().(*syscall.Stat_t).Ino)
	}
	if inodes[0] == inodes[1] {
		t.Errorf("the second write reused inode %d: written in place, not renamed", inodes[0])
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("files in the textfile dir: %v, want only safe-restart.prom", entries)
	}
	text := readFile(t, path)
	promtest.Check(t, text)
	if m := promtest.Parse(t, text); m["safe_restart_metrics_timestamp_seconds{}"] <= 0 {
		t.Errorf("no timestamp in the textfile:\n%s", text)
	}
	missing := filepath.Join(dir, "nodir", "safe-restart.prom")
	if code, _, errOut := runCLI(t, "metrics", "--state-dir", state, "--textfile", missing); code != exitFailed || !strings.Contains(errOut, "write textfile "+missing) {
		t.Errorf("textfile in a missing dir: exit %d, %s", code, errOut)
	}
}

// TestMetricsNginx: a real nginx is up, its reload count (logged at the
// notice level) follows the CLI's reloads, its master's pthread keys are
// read, and it has no IPC orphan series (nginx creates no SysV IPC).
func TestMetricsNginx(t *testing.T) {
	nstest.RequireBinaries(t, "nginx", "promtool")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := nginxtest.Start(t, nginxtest.Options{ErrorLogLevel: "notice"})
	state := t.TempDir()
	args := []string{"nginx", "--conf", srv.ConfPath, "--state-dir", state}
	m := metricsOf(t, exitOK, args...)
	wantMetric(t, m, "safe_restart_server_up{service=nginx}", 1)
	wantMetric(t, m, "safe_restart_reloads_since_master_start{service=nginx}", 0)
	if keys, ok := m["safe_restart_pthread_keys_used{service=nginx}"]; !ok || keys <= 0 || keys >= 1024 {
		t.Errorf("pthread keys used %v (present %v), want some, below the limit of 1024", keys, ok)
	}
	for i := 1; i <= 2; i++ {
		if code, out, errOut := runCLI(t, "reload", "nginx", "--conf", srv.ConfPath, "--state-dir", state); code != exitOK {
			t.Fatalf("reload %d: exit %d\n%s\n%s", i, code, out, errOut)
		}
	}
	m = metricsOf(t, exitOK, args...)
	wantMetric(t, m, "safe_restart_reloads_since_master_start{service=nginx}", 2)
	wantMetric(t, m, "safe_restart_last_operation_exit_code{op=reload,service=nginx}", 0)
	wantMetric(t, m, "safe_restart_master_start_time_seconds{service=nginx}", startOf(t, srv.MasterPID()))
	for series := range m {
		if strings.HasPrefix(series, "safe_restart_ipc_orphaned_objects{") {
			t.Errorf("%s: nginx has no IPC signature", series)
		}
	}
}

// startOf is when process pid started, as metrics exposes it.
func startOf(t *testing.T, pid int) float64 {
	t.Helper()
	p, err := proctest.Stat(pid)
	if err != nil {
		t.Fatal(err)
	}
	return unixSeconds(p.Start)
}

// TestMetricsFPMBehindNginx: php-fpm behind a real nginx, its health
// checked through nginx (--health-url): up, with its reload count after
// reloads through the CLI; a pool whose workers all hang (SIGSTOP) while
// the master lives is down (nginx answers 504), and up again once they run.
func TestMetricsFPMBehindNginx(t *testing.T) {
	nstest.RequireBinaries(t, fpmtest.Binary, "nginx", "promtool")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	fpm := fpmtest.Start(t, fpmtest.Config{})
	front := nginxtest.Start(t, nginxtest.Options{FastCGIPass: fpm.Listen, Root: fpm.DocRoot, HTTPExtra: "fastcgi_read_timeout 2s;"})
	state := t.TempDir()
	args := []string{fpmService, "--conf", fpm.ConfPath, "--state-dir", state, "--health-url", "http://" + front.Addr + "/index.php"}
	for i := 1; i <= 2; i++ {
		if code, out, errOut := fpmCLI(t, fpm, state, "reload", fpmService); code != exitOK {
			t.Fatalf("reload %d: exit %d\n%s\n%s", i, code, out, errOut)
		}
	}
	m := metricsOf(t, exitOK, args...)
	wantMetric(t, m, "safe_restart_server_up{service="+fpmService+"}", 1)
	wantMetric(t, m, "safe_restart_reloads_since_master_start{service="+fpmService+"}", 2)
	wantMetric(t, m, "safe_restart_last_operation_exit_code{op=reload,service="+fpmService+"}", 0)

	var workers []int
	for _, w := range fpm.Workers() {
		workers = append(workers, w.PID)
	}
	if len(workers) == 0 {
		t.Fatal("no php-fpm worker")
	}
	signalAll(t, workers, syscall.SIGSTOP)
	m = metricsOf(t, exitOK, args...)
	signalAll(t, workers, syscall.SIGCONT)
	wantMetric(t, m, "safe_restart_server_up{service="+fpmService+"}", 0)
	wantMetric(t, m, "safe_restart_master_start_time_seconds{service="+fpmService+"}", startOf(t, fpm.MasterPID()))
	m = metricsOf(t, exitOK, args...)
	wantMetric(t, m, "safe_restart_server_up{service="+fpmService+"}", 1)
}

// unixSeconds is t as the metrics give times: Unix seconds, fractional.
func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
