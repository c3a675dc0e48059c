package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/safe-restart/safe-restart/internal/apachetest"
	"github.com/safe-restart/safe-restart/internal/fpmtest"
	"github.com/safe-restart/safe-restart/internal/nginxtest"
	"github.com/safe-restart/safe-restart/internal/nstest"
	"github.com/safe-restart/safe-restart/internal/semtest"
	"github.com/safe-restart/safe-restart/supervise/doctor"
)

// doctorRoot writes a fake root for doctor's --root: logind.conf with
// RemoveIPC as given ("" leaves it commented out, the default yes), and
// /etc/cron.d/safe-restart from examples/cron (which has a jitter) plus
// the extra cron lines.
func doctorRoot(t *testing.T, removeIPC string, cron ...string) string {
	t.Helper()
	root := t.TempDir()
	logind := "[Login]\n#RemoveIPC=yes\n"
	if removeIPC != "" {
		logind += "RemoveIPC=" + removeIPC + "\n"
	}
	example, err := os.ReadFile("../../examples/cron/safe-restart")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"etc/systemd/logind.conf": logind, "etc/cron.d/safe-restart": string(example)}
	if len(cron) > 0 {
		files["etc/cron.d/web"] = strings.Join(cron, "\n") + "\n"
	}
	for name, text := range files {
		path := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// doctorJSON runs `safe-restart doctor ARGS --json` and returns its exit code
// and report.
func doctorJSON(t *testing.T, args ...string) (int, doctor.Report) {
	t.Helper()
	code, out, errOut := runCLI(t, append([]string{"doctor", "--json"}, args...)...)
	var rep doctor.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("doctor %v: exit %d, not a JSON report: %v\n%s\n%s", args, code, err, out, errOut)
	}
	if want := min(len(rep.Findings), 1); code != want {
		t.Fatalf("doctor %v: exit %d with %d findings\n%s\n%s", args, code, len(rep.Findings), out, errOut)
	}
	return code, rep
}

// finding returns the report's finding of check, failing the test when
// there is none.
func finding(t *testing.T, rep doctor.Report, check string) doctor.Finding {
	t.Helper()
	for _, f := range rep.Findings {
		if f.Check == check {
			return f
		}
	}
	t.Fatalf("no %s finding in %s", check, dump(rep))
	return doctor.Finding{}
}

func checks(rep doctor.Report) []string {
	var out []string
	for _, f := range rep.Findings {
		out = append(out, f.Check)
	}
	slices.Sort(out)
	return out
}

func dump(rep doctor.Report) string {
	b, _ := json.MarshalIndent(rep, "", "  ")
	return string(b)
}

// TestDoctorCleanSetup: fresh Apache, nginx and php-fpm, logind with
// RemoveIPC=no, a crontab with a jitter: no finding, exit 0, twice (the
// second run compares against the first's samples).
func TestDoctorCleanSetup(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl", "nginx", fpmtest.Binary)
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	root, state := doctorRoot(t, "no"), t.TempDir()
	apache := apachetest.Start(t, apachetest.Config{MPM: "event"})
	fpm := fpmtest.Start(t, fpmtest.Config{})
	ngx := nginxtest.Start(t, nginxtest.Options{})
	for _, run := range []int{1, 2} {
		for _, svc := range [][2]string{{"apache2", apache.ConfPath}, {"nginx", ngx.ConfPath}, {"php8.2-fpm", fpm.ConfPath}} {
			if _, rep := doctorJSON(t, svc[0], "--conf", svc[1], "--root", root, "--state-dir", state); len(rep.Findings) != 0 {
				t.Fatalf("run %d, %s: %s", run, svc[0], dump(rep))
			}
		}
	}
	code, out, errOut := runCLI(t, "doctor", "apache2", "--conf", apache.ConfPath, "--root", root, "--state-dir", state)
	if code != exitOK || !strings.Contains(out, "no risks found") {
		t.Fatalf("human output: exit %d\n%s\n%s", code, out, errOut)
	}
}

// TestDoctorApacheKill9: kill -9 of a prefork master leaves its children
// serving as orphans and its pidfile behind; once the orphans are gone
// too, the accept mutex it created is a leaked set. Doctor names each.
func TestDoctorApacheKill9(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	root, state := doctorRoot(t, "no"), t.TempDir()
	srv := apachetest.Start(t, apachetest.Config{MPM: "prefork", SysvSem: true})
	children := srv.Children()
	srv.KillMaster9()
	args := []string{"apache2", "--conf", srv.ConfPath, "--root", root, "--state-dir", state}
	_, rep := doctorJSON(t, args...)
	if got := checks(rep); !slices.Equal(got, []string{"orphaned-workers", "stale-pidfile"}) {
		t.Fatalf("after kill -9 of the master: %v\n%s", got, dump(rep))
	}
	orphans := finding(t, rep, "orphaned-workers")
	for _, pid := range children {
		if !strings.Contains(strings.Join(orphans.Evidence, "\n"), fmt.Sprintf("pid %d ", pid)) {
			t.Errorf("orphan %d not in the evidence: %v", pid, orphans.Evidence)
		}
	}
	if f := finding(t, rep, "stale-pidfile"); !strings.Contains(f.Evidence[0], srv.PidFile) {
		t.Errorf("stale pidfile evidence: %v", f.Evidence)
	}
	code, out, _ := runCLI(t, append([]string{"doctor"}, args...)...)
	for _, want := range []string{"[critical] apache2 orphaned-workers: ", "[warning] apache2 stale-pidfile: ", "  evidence: pid ", "  fix: `safe-restart start apache2`", "2 risk(s) found"} {
		if code != exitFailed || !strings.Contains(out, want) {
			t.Errorf("human output: exit %d, no %q:\n%s", code, want, out)
		}
	}
	srv.KillGroup9()
	_, rep = doctorJSON(t, args...)
	if got := checks(rep); !slices.Equal(got, []string{"stale-pidfile", "sysv-orphans"}) {
		t.Fatalf("after the orphans died too: %v\n%s", got, dump(rep))
	}
	if f := finding(t, rep, "sysv-orphans"); !strings.Contains(f.Summary, "1 SysV object") {
		t.Errorf("leaked sets: %+v", f)
	}
}

// TestDoctorRemoveIPC: Apache with `User #1000` and `Mutex sysvsem default`
// owns its semaphores as uid 1000; with logind's RemoveIPC=yes (explicit,
// or the default) doctor names the risk, with RemoveIPC=no it does not.
func TestDoctorRemoveIPC(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := apachetest.Start(t, apachetest.Config{MPM: "prefork", SysvSem: true, User: "#1000", Group: "#1000"})
	state := t.TempDir()
	for _, removeIPC := range []string{"yes", ""} {
		_, rep := doctorJSON(t, "apache2", "--conf", srv.ConfPath, "--root", doctorRoot(t, removeIPC), "--state-dir", state)
		f := finding(t, rep, "logind-removeipc")
		ev := strings.Join(f.Evidence, "\n")
		for _, want := range []string{"uid 1000", "mechanism=sysvsem", "RemoveIPC=yes", "semaphore sets owned by uid 1000 now"} {
			if !strings.Contains(ev, want) {
				t.Errorf("RemoveIPC=%q: evidence lacks %q:\n%s", removeIPC, want, ev)
			}
		}
		if len(rep.Findings) != 1 {
			t.Errorf("RemoveIPC=%q: %v", removeIPC, checks(rep))
		}
	}
	if _, rep := doctorJSON(t, "apache2", "--conf", srv.ConfPath, "--root", doctorRoot(t, "no"), "--state-dir", state); len(rep.Findings) != 0 {
		t.Fatalf("RemoveIPC=no: %s", dump(rep))
	}
}

// TestDoctorSemLimits: with SEMMNI lowered in this IPC namespace and 9 of
// its 10 sets taken, doctor without a service (every built-in installed)
// names the usage.
func TestDoctorSemLimits(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	// doctor without SERVICE config-tests the installed servers' default
	// configurations, which open their logs under /var/log: this test's
	// private mount namespace gets its own.
	if err := unix.Mount("tmpfs", "/var/log", "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"/var/log/nginx", "/var/log/apache2"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile("/proc/sys/kernel/sem", []byte("32000 1024000000 500 10\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 9 {
		if _, err := semtest.Create(0, 1, 0o600, 33, 33, 1); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errOut := runCLI(t, "doctor", "--json", "--root", doctorRoot(t, "no"), "--state-dir", t.TempDir())
	var rep doctor.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != exitFailed {
		t.Fatalf("exit %d, %v\n%s\n%s", code, err, out, errOut)
	}
	f := finding(t, rep, "sysv-limits")
	if f.Service != "" || !strings.Contains(f.Evidence[0], "9 of 10 semaphore sets in use (90% of SEMMNI)") || !strings.Contains(f.Evidence[1], "uid 33: 9") {
		t.Errorf("sysv-limits: %+v", f)
	}
	if !slices.Contains(rep.Services, "apache2") {
		t.Errorf("the installed apache2 was not checked: %v", rep.Services)
	}
	if err := os.WriteFile("/proc/sys/kernel/sem", []byte("32000 1024000000 500 100\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, rep := doctorJSON(t, "apache2", "--conf", apachetest.Start(t, apachetest.Config{}).ConfPath, "--root", doctorRoot(t, "no"), "--state-dir", t.TempDir()); len(rep.Findings) != 0 {
		t.Fatalf("9 of 100 sets: %s", dump(rep))
	}
}

// TestDoctorKeyGrowth: a module built with apxs leaks pthread keys on
// every configuration load, and libgomp is mapped (LoadFile). Before any
// reload doctor can only name libgomp; after reloads through safe-restart
// it measures the keys gained per reload from the samples.
func TestDoctorKeyGrowth(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl", "apxs")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	gomp, err := filepath.Glob("/usr/lib/*/libgomp.so.1")
	if err != nil || len(gomp) == 0 {
		t.Fatalf("no libgomp.so.1 (gcc's runtime, installed with apache2-dev's toolchain): %v", err)
	}
	srv := apachetest.Start(t, apachetest.Config{MPM: "prefork", Extra: buildKeyLeak(t) + "\nLoadFile " + gomp[0]})
	root, state := doctorRoot(t, "no"), t.TempDir()
	args := []string{"apache2", "--conf", srv.ConfPath, "--root", root, "--state-dir", state}
	_, rep := doctorJSON(t, args...)
	if got := checks(rep); !slices.Equal(got, []string{"libgomp"}) {
		t.Fatalf("before any reload: %v\n%s", got, dump(rep))
	}
	const reloads = 3
	for i := range reloads {
		if code, out, errOut := runCLI(t, "reload", "apache2", "--conf", srv.ConfPath, "--state-dir", state); code != exitOK {
			t.Fatalf("reload %d: exit %d\n%s\n%s", i+1, code, out, errOut)
		}
	}
	_, rep = doctorJSON(t, args...)
	f := finding(t, rep, "pthread-keys-growth")
	ev := strings.Join(f.Evidence, "\n")
	want := fmt.Sprintf("+%d keys over %d reloads: %d.0 keys per reload", keysPerLoad*reloads, reloads, keysPerLoad)
	if f.Severity != doctor.Critical || !strings.Contains(ev, want) || !strings.Contains(ev, "libgomp is mapped") {
		t.Fatalf("want %q with libgomp, critical:\n%s", want, dump(rep))
	}
	if got := checks(rep); !slices.Equal(got, []string{"pthread-keys-growth"}) {
		t.Errorf("findings %v", got)
	}
	t.Logf("%s: %s", f.Summary, ev)
}

// TestDoctorFPMMemory: a pool with process_control_timeout = 0 is named at
// once; its one worker (pm.max_requests = 0: never recycled) retains more
// memory after each bigger request (Zend's allocator keeps the chunks of
// its peak), and once samples show that growth doctor names it.
func TestDoctorFPMMemory(t *testing.T) {
	nstest.RequireBinaries(t, fpmtest.Binary)
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := fpmtest.Start(t, fpmtest.Config{ProcessControlTimeout: "0", Children: 1})
	grow := `<?php $a = []; for ($i = 0; $i < (int)$_GET['kb'] / 100; $i++) { $a[] = str_repeat(chr(65 + $i % 26), 100 * 1024); } echo count($a);`
	if err := os.WriteFile(filepath.Join(srv.DocRoot, "grow.php"), []byte(grow), 0o644); err != nil {
		t.Fatal(err)
	}
	root, state := doctorRoot(t, "no"), t.TempDir()
	args := []string{"php8.2-fpm", "--conf", srv.ConfPath, "--root", root, "--state-dir", state}
	_, rep := doctorJSON(t, args...)
	if got := checks(rep); !slices.Equal(got, []string{"config"}) || !strings.Contains(rep.Findings[0].Summary, "process_control_timeout = 0") {
		t.Fatalf("at start: %v\n%s", got, dump(rep))
	}
	for _, kb := range []int{4000, 8000, 16000, 32000} {
		if c, body, err := srv.Get("/grow.php?kb=" + strconv.Itoa(kb)); err != nil || c != 200 {
			t.Fatalf("grow.php?kb=%d: %d %q %v", kb, c, body, err)
		}
		_, rep = doctorJSON(t, args...)
	}
	f := finding(t, rep, "fpm-memory-growth")
	if !strings.Contains(f.Summary, "pool www") || !strings.Contains(f.Evidence[0], "pm.max_requests = 0") {
		t.Fatalf("growth: %s", dump(rep))
	}
	t.Logf("%s: %v", f.Summary, f.Evidence)
}

// TestDoctorLogLines: a prefork child killed with SIGSEGV (Apache logs
// AH00052), a php-fpm pool that cannot spawn workers fast enough under load
// (`seems busy`), and crontab lines that reload at a fixed time: each is
// found, and a cron line for another server is left out of a service's
// report.
func TestDoctorLogLines(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl", fpmtest.Binary)
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	root := doctorRoot(t, "no", "0 4 * * * root /usr/sbin/apache2ctl graceful", "30 2 * * * root systemctl reload nginx")
	state := t.TempDir()
	apache := apachetest.Start(t, apachetest.Config{MPM: "prefork"})
	victim := apache.Children()[0]
	if err := syscall.Kill(victim, syscall.SIGSEGV); err != nil {
		t.Fatal(err)
	}
	waitLog(t, apache.ErrorLogText, fmt.Sprintf("child pid %d exit signal Segmentation fault", victim))
	_, rep := doctorJSON(t, "apache2", "--conf", apache.ConfPath, "--root", root, "--state-dir", state)
	if got := checks(rep); !slices.Equal(got, []string{"cron-no-jitter", "log-segfault"}) {
		t.Fatalf("apache: %v\n%s", got, dump(rep))
	}
	if f := finding(t, rep, "log-segfault"); !strings.Contains(f.Evidence[1], "AH00052") {
		t.Errorf("segfault evidence: %v", f.Evidence)
	}
	if f := finding(t, rep, "cron-no-jitter"); len(f.Evidence) != 1 || !strings.Contains(f.Evidence[0], "etc/cron.d/web:1: 0 4 * * * root /usr/sbin/apache2ctl graceful") {
		t.Errorf("cron evidence: %v", f.Evidence)
	}

	fpm := fpmtest.Start(t, fpmtest.Config{PM: "dynamic", Children: 40,
		Pool: "pm.start_servers = 1\npm.min_spare_servers = 1\npm.max_spare_servers = 2"})
	stop := load(t, 30, func() bool {
		c, _, err := fpm.Get("/slow.php?ms=300")
		return err == nil && c == 200
	})
	waitLog(t, fpm.ErrorLogText, "] seems busy (")
	stop()
	_, rep = doctorJSON(t, "php8.2-fpm", "--conf", fpm.ConfPath, "--root", root, "--state-dir", state)
	if got := checks(rep); !slices.Equal(got, []string{"log-seems-busy"}) {
		t.Fatalf("php-fpm: %v\n%s", got, dump(rep))
	}
}

// waitLog waits until text() contains want.
func waitLog(t *testing.T, text func() string, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(text(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the log never showed %q:\n%s", want, text())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDoctorUsage: a bad service is a usage error (2), --conf needs a
// service (2), a failing config test refuses (3).
func TestDoctorUsage(t *testing.T) {
	state := t.TempDir()
	if code, _, _ := runCLI(t, "doctor", "no-such-server", "--state-dir", state); code != exitUsage {
		t.Errorf("unknown service: exit %d", code)
	}
	if code, _, errOut := runCLI(t, "doctor", "--conf", "/etc/apache2/apache2.conf", "--state-dir", state); code != exitUsage || !strings.Contains(errOut, "--conf needs a SERVICE") {
		t.Errorf("--conf alone: exit %d %s", code, errOut)
	}
	if code, _, _ := runCLI(t, "doctor", "a", "b", "--state-dir", state); code != exitUsage {
		t.Errorf("two services: exit %d", code)
	}
	nstest.RequireBinaries(t, "apache2", "apache2ctl")
	bad := filepath.Join(t.TempDir(), "bad.conf")
	if err := os.WriteFile(bad, []byte("LoadModule mpm_prefork_module /usr/lib/apache2/modules/mod_mpm_prefork.so\nNoSuchDirective on\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCLI(t, "doctor", "apache2", "--conf", bad, "--state-dir", t.TempDir()); code != exitRefused || !strings.Contains(errOut, "NoSuchDirective") {
		t.Errorf("bad config: exit %d %s", code, errOut)
	}
}

// TestDoctorKeyGrowthAcrossRotation: between two reloads through
// safe-restart, the real logrotate renames the log and reloads Apache
// itself (Debian's postrotate); the samples still count every reload, so
// doctor measures the keys per reload over all three.
func TestDoctorKeyGrowthAcrossRotation(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl", "apxs", "logrotate")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := apachetest.Start(t, apachetest.Config{MPM: "prefork", Extra: buildKeyLeak(t)})
	root, state := doctorRoot(t, "no"), t.TempDir()
	args := []string{"apache2", "--conf", srv.ConfPath, "--root", root, "--state-dir", state}
	doctorJSON(t, args...)
	reload := func() {
		t.Helper()
		if code, out, errOut := runCLI(t, "reload", "apache2", "--conf", srv.ConfPath, "--state-dir", state); code != exitOK {
			t.Fatalf("reload: exit %d\n%s\n%s", code, out, errOut)
		}
	}
	reload()
	srv.Logrotate()
	reload()
	_, rep := doctorJSON(t, args...)
	f := finding(t, rep, "pthread-keys-growth")
	ev := strings.Join(f.Evidence, "\n")
	if want := fmt.Sprintf("+%d keys over 3 reloads: %d.0 keys per reload", keysPerLoad*3, keysPerLoad); !strings.Contains(ev, want) {
		t.Fatalf("want %q:\n%s", want, dump(rep))
	}
	t.Logf("%s: %s", f.Summary, ev)
}
