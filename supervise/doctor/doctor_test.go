package doctor

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise"
	"github.com/safe-restart/safe-restart/supervise/growth"
	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/server"
	"github.com/safe-restart/safe-restart/supervise/systemd"
)

// TestUnjitteredReload: the cron matcher finds every common way to reload
// or restart a web server on a schedule, and accepts a random delay.
func TestUnjitteredReload(t *testing.T) {
	tests := []struct {
		line   string
		system bool
		want   string // the target, "" for no finding
	}{
		{"17 3 * * * root /usr/local/bin/safe-restart apache2 --jitter 30m --max-reloads 500 --log-format json >>/var/log/safe-restart.log 2>&1", true, ""},
		{"17 3 * * * root /usr/local/bin/safe-restart apache2 --max-reloads 500", true, "apache2"},
		{"17 3 * * * root safe-restart --log-format json nginx", true, "nginx"},
		{"17 3 * * * root safe-restart reload --conf /etc/x.conf php8.2-fpm", true, "php8.2-fpm"},
		{"17 3 * * * root safe-restart restart apache2 --jitter=0s", true, "apache2"},
		{"17 3 * * * root safe-restart apache2 --jitter=10m", true, ""},
		{"17 3 * * * root safe-restart status apache2", true, ""},
		{"17 3 * * * root safe-restart doctor", true, ""},
		{"0 4 * * * root /usr/sbin/apachectl graceful", true, "apachectl"},
		{"0 4 * * * /usr/sbin/apache2ctl restart", false, "apache2ctl"},
		{"0 4 * * * root /usr/sbin/apache2 -f /etc/apache2/apache2.conf -k graceful", true, "apache2"},
		{"*/30 * * * * root systemctl reload apache2", true, "apache2"},
		{"0 0 * * * root systemctl --quiet restart php8.2-fpm.service", true, "php8.2-fpm"},
		{"0 0 * * * root systemctl reload-or-restart nginx", true, "nginx"},
		{"0 0 * * * root systemctl restart postgresql", true, ""},
		{"0 0 * * * root service httpd graceful", true, "httpd"},
		{"0 0 * * * root /etc/init.d/nginx reload", true, "nginx"},
		{"0 0 * * * root invoke-rc.d apache2 reload >/dev/null", true, "apache2"},
		{"0 0 * * * root invoke-rc.d nginx rotate", true, ""},
		{"5 0 * * * root nginx -s reload", true, "nginx"},
		{"5 0 * * * root /usr/sbin/nginx -c /etc/nginx/nginx.conf -s reload", true, "nginx"},
		{"5 0 * * * root kill -USR1 $(cat /run/apache2/apache2.pid)", true, "apache2"},
		{"5 0 * * * root kill -HUP `cat /run/nginx.pid`", true, "nginx"},
		{"5 0 * * * root pkill -USR2 php-fpm8.2", true, "php-fpm8.2"},
		{"5 0 * * * root kill -s HUP $(cat /var/run/httpd/httpd.pid)", true, "httpd"},
		{"5 0 * * * root kill -TERM $(cat /run/apache2/apache2.pid)", true, ""},
		{"5 0 * * * root kill -HUP $(cat /run/rsyslogd.pid)", true, ""},
		{"@daily root systemctl reload apache2", true, "apache2"},
		{"@reboot root systemctl restart apache2", true, ""},
		{"@hourly systemctl reload nginx", false, "nginx"},
		{"0 3 * * * root sleep $((RANDOM \\% 1800)) && systemctl reload apache2", true, ""},
		{"0 3 * * * root sleep $(shuf -i 0-1800 -n 1); apachectl graceful", true, ""},
		{"0 3 * * * root perl -e 'sleep rand 900'; nginx -s reload", true, ""},
		{"0 3 * * * root sleep 60; systemctl reload apache2", true, "apache2"},
		{"0 3 * * * root echo reload %systemctl reload apache2", true, ""},
		{"# 0 3 * * * root systemctl reload apache2", true, ""},
		{"SHELL=/bin/bash", true, ""},
		{"MAILTO=root", false, ""},
		{"", true, ""},
		{"0 3 * * *", true, ""},
		{"0 3 * * * root", true, ""},
		{"0\t3\t*\t*\t*\troot\tsystemctl reload apache2", true, "apache2"},
		{"0 3 * * * root /usr/bin/test -x /usr/sbin/apache2ctl && /usr/sbin/apache2ctl graceful", true, "apache2ctl"},
		{"0 3 * * * root /usr/local/bin/my-safe-restart apache2", true, ""},
		{"0 3 * * * root /usr/bin/nginx-log-parser --reload", true, ""},
		{"0 3 * * * root systemctl status apache2", true, ""},
	}
	for _, tt := range tests {
		got, ok := unjitteredReload(tt.line, tt.system)
		if ok != (tt.want != "") || got != tt.want {
			t.Errorf("unjitteredReload(%q, system %v) = %q, %v; want %q", tt.line, tt.system, got, ok, tt.want)
		}
	}
}

// TestCronExampleHasJitter: examples/cron/safe-restart yields no finding.
func TestCronExampleHasJitter(t *testing.T) {
	root := t.TempDir()
	writeTree(t, filepath.Join(root, "etc/cron.d/safe-restart"), string(mustRead(t, "../../examples/cron/safe-restart")))
	if f, notes := cronFindings(root, nil); len(f) != 0 || len(notes) != 0 {
		t.Fatalf("examples/cron/safe-restart: %+v %v", f, notes)
	}
}

// TestCronFindings: the crontabs of every location are read, with file
// and line as evidence; backups are skipped; a filter keeps one server.
func TestCronFindings(t *testing.T) {
	root := t.TempDir()
	writeTree(t, filepath.Join(root, "etc/crontab"), "SHELL=/bin/sh\n17 *\t* * *\troot\tcd / && run-parts --report /etc/cron.hourly\n0 4 * * * root apachectl graceful\n")
	writeTree(t, filepath.Join(root, "etc/cron.d/web"), "# nightly\n30 2 * * * root systemctl reload nginx\n")
	writeTree(t, filepath.Join(root, "etc/cron.d/web.dpkg-old"), "30 2 * * * root systemctl reload nginx\n")
	writeTree(t, filepath.Join(root, "var/spool/cron/crontabs/deploy"), "0 5 * * * safe-restart php8.2-fpm\n")
	f, notes := cronFindings(root, nil)
	if len(f) != 1 || len(f[0].Evidence) != 3 || len(notes) != 0 {
		t.Fatalf("findings %+v, notes %v", f, notes)
	}
	for i, want := range []string{"etc/crontab:3: 0 4 * * * root apachectl graceful", "etc/cron.d/web:2:", "crontabs/deploy:1:"} {
		if !strings.Contains(f[0].Evidence[i], want) {
			t.Errorf("evidence %d = %q, want %q", i, f[0].Evidence[i], want)
		}
	}
	onlyNginx := func(target string) bool { return serverFamily(target) == "nginx" }
	if f, _ := cronFindings(root, onlyNginx); len(f) != 1 || len(f[0].Evidence) != 1 || !strings.Contains(f[0].Evidence[0], "nginx") {
		t.Fatalf("filtered: %+v", f)
	}
}

// TestReadLogind: the last RemoveIPC= wins, drop-ins after the main file in
// name order, /etc's drop-in hiding a same-named one in /usr/lib; the
// default is yes; no logind at all is not present.
func TestReadLogind(t *testing.T) {
	root := t.TempDir()
	if c := readLogind(root); c.present || !c.removeIPC {
		t.Fatalf("empty root: %+v", c)
	}
	writeTree(t, filepath.Join(root, "etc/systemd/logind.conf"), "[Login]\n#RemoveIPC=no\nKillUserProcesses=no\n")
	if c := readLogind(root); !c.present || !c.removeIPC || !strings.Contains(c.source, "default") {
		t.Fatalf("commented out: %+v", c)
	}
	writeTree(t, filepath.Join(root, "usr/lib/systemd/logind.conf.d/10-vendor.conf"), "[Login]\nRemoveIPC=no\n")
	if c := readLogind(root); c.removeIPC || !strings.Contains(c.source, "10-vendor.conf:2") {
		t.Fatalf("vendor drop-in: %+v", c)
	}
	writeTree(t, filepath.Join(root, "etc/systemd/logind.conf.d/20-admin.conf"), "[Other]\nRemoveIPC=no\n[Login]\nRemoveIPC = on\n")
	if c := readLogind(root); !c.removeIPC || !strings.Contains(c.source, "20-admin.conf:4") {
		t.Fatalf("admin drop-in: %+v", c)
	}
	writeTree(t, filepath.Join(root, "etc/systemd/logind.conf.d/10-vendor.conf"), "[Login]\nRemoveIPC=yes\n")
	writeTree(t, filepath.Join(root, "run/systemd/logind.conf.d/30-run.conf"), "[Login]\nRemoveIPC=false\n")
	if c := readLogind(root); c.removeIPC || !strings.Contains(c.source, "30-run.conf") {
		t.Fatalf("run drop-in last by name: %+v", c)
	}
	writeTree(t, filepath.Join(root, "run/systemd/logind.conf.d/40-bad.conf"), "[Login]\nRemoveIPC=maybe\n")
	if c := readLogind(root); len(c.notes) != 1 || !strings.Contains(c.notes[0], "not a boolean") {
		t.Fatalf("bad value: %+v", c)
	}
}

// TestLogFindings: each kind of line is counted, with the last one and its
// timestamp; lines about a client request never count; the first rotation
// is read too; only the end of a big log is read.
func TestLogFindings(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "error.log")
	writeTree(t, log+".1", "[29-Nov-2026 01:00:00] WARNING: [pool www] seems busy (you may need to increase pm.start_servers, or pm.min/max_spare_servers), spawning 8 children, there are 0 idle, and 9 total children\n")
	writeTree(t, log, strings.Join([]string{
		"[Sun Nov 29 02:00:00.1 2026] [core:notice] [pid 10:tid 10] AH00052: child pid 11 exit signal Segmentation fault (11)",
		"[29-Nov-2026 02:00:01] ERROR: fork() failed: Cannot allocate memory (12)",
		"[29-Nov-2026 02:00:02] WARNING: [pool www] child 12 exited on signal 11 (SIGSEGV - core dumped) after 3.1 seconds from start",
		"2026/11/29 02:00:03 [alert] 5#5: fork() failed while spawning \"worker process\" (11: Resource temporarily unavailable)",
		"2026/11/29 02:00:04 [emerg] 5#5: malloc(4096) failed (12: Cannot allocate memory)",
		"[Sun Nov 29 02:00:05.1 2026] [core:error] [pid 13] [client 127.0.0.1:5] File does not exist: /Segmentation fault",
		"2026/11/29 02:00:06 [error] 7#7: *1 open() \"/x/seems busy (\" failed, client: 127.0.0.1, server: _, request: \"GET /\"",
		"[29-Nov-2026 02:00:07] WARNING: [pool www] seems busy (you may need to increase pm.start_servers, or pm.min/max_spare_servers), spawning 16 children, there are 0 idle, and 17 total children",
		"[29-Nov-2026 02:00:08] WARNING: [pool www] child 14 exited on signal 9 (SIGKILL) after 0.2 seconds from start",
		"2026/11/29 02:00:09 [alert] 5#5: worker process 15 exited on signal 9",
		"",
	}, "\n"))
	f, notes := logFindings("x", server.RunConfig{ErrorLog: "error.log", ServerRoot: dir})
	if len(notes) != 0 || len(f) != 5 {
		t.Fatalf("findings %+v, notes %v", f, notes)
	}
	want := map[string]string{"log-fork-failed": "2 line(s)", "log-oom": "1 line(s)", "log-segfault": "2 line(s)", "log-sigkill": "2 line(s)", "log-seems-busy": "2 line(s)"}
	for _, x := range f {
		if !strings.Contains(x.Summary, want[x.Check]) {
			t.Errorf("%s: %q, want %s", x.Check, x.Summary, want[x.Check])
		}
	}
	if last := f[4].Evidence[1]; f[4].Check != "log-seems-busy" || !strings.Contains(last, "02:00:07") {
		t.Errorf("seems busy: %+v", f[4])
	}
	if last := f[3].Evidence[1]; f[3].Check != "log-sigkill" || !strings.Contains(last, "worker process 15 exited on signal 9") {
		t.Errorf("sigkill: %+v", f[3])
	}
	if f, _ := logFindings("x", server.RunConfig{ErrorLog: "syslog:daemon"}); len(f) != 0 {
		t.Errorf("syslog: %+v", f)
	}
	big := strings.Repeat("[core:notice] AH00052: child pid 1 exit signal Segmentation fault (11)\n", 10) + strings.Repeat(strings.Repeat("x", 99)+"\n", logScanBytes/100+1)
	writeTree(t, log, big)
	os.Remove(log + ".1")
	if f, _ := logFindings("x", server.RunConfig{ErrorLog: log}); len(f) != 0 {
		t.Errorf("lines before the last %d bytes counted: %+v", logScanBytes, f)
	}
}

// TestOOMFindings: OOM kills counted by the master's memory cgroup (v1
// or v2) are a finding that takes the log's SIGKILL lines as evidence; no
// kill, the root cgroup, or no master leave the log findings as they are.
func TestOOMFindings(t *testing.T) {
	old := proc.CgroupRoot
	defer func() { proc.CgroupRoot = old }()
	proc.CgroupRoot = t.TempDir() // no cgroup.controllers: v2 is under unified
	procDir := t.TempDir()
	writeTree(t, filepath.Join(procDir, "10/cgroup"), "9:name=systemd:/\n4:memory:/system.slice/php8.2-fpm.service\n0::/\n")
	writeTree(t, filepath.Join(procDir, "11/cgroup"), "0::/system.slice/nginx.service\n")
	writeTree(t, filepath.Join(procDir, "12/cgroup"), "4:memory:/\n")
	writeTree(t, filepath.Join(proc.CgroupRoot, "memory/system.slice/php8.2-fpm.service/memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
	writeTree(t, filepath.Join(proc.CgroupRoot, "unified/system.slice/nginx.service/memory.events"), "low 0\nhigh 0\nmax 4\noom 1\noom_kill 0\n")
	writeTree(t, filepath.Join(proc.CgroupRoot, "memory/memory.oom_control"), "oom_kill 7\n")
	sigkill := Finding{Check: "log-sigkill", Summary: "server processes were killed with SIGKILL: 1 line(s) in the error log",
		Evidence: []string{"1 line(s) in /x/error.log", "last, in /x/error.log: [pool www] child 5 exited on signal 9 (SIGKILL) after 1.5 seconds from start"}}
	busy := Finding{Check: "log-seems-busy"}
	logs := []Finding{sigkill, busy}
	master := func(pid int) supervise.Status {
		return supervise.Status{Service: "x", Master: &ipcguard.Proc{PID: pid}}
	}
	got := oomFindings(procDir, master(10), logs)
	if len(got) != 2 || got[0].Check != "oom-kill" || got[1].Check != "log-seems-busy" || got[0].Severity != Critical || len(logs) != 2 || logs[0].Check != "log-sigkill" {
		t.Fatalf("v1 with two kills: %+v (logs %+v)", got, logs)
	}
	ev := strings.Join(got[0].Evidence, "\n")
	for _, want := range []string{"oom_kill 2 in " + proc.CgroupRoot + "/memory/system.slice/php8.2-fpm.service/memory.oom_control", "child 5 exited on signal 9 (SIGKILL)"} {
		if !strings.Contains(ev, want) {
			t.Errorf("evidence lacks %q:\n%s", want, ev)
		}
	}
	for name, st := range map[string]supervise.Status{"v2, no kill": master(11), "root cgroup": master(12), "no cgroup file": master(13), "no master": {Service: "x"}} {
		if got := oomFindings(procDir, st, logs); len(got) != 2 || got[0].Check != "log-sigkill" {
			t.Errorf("%s: %+v", name, got)
		}
	}
	writeTree(t, filepath.Join(proc.CgroupRoot, "unified/system.slice/nginx.service/memory.events"), "oom 1\noom_kill 1\n")
	if got := oomFindings(procDir, master(11), nil); len(got) != 1 || !strings.Contains(got[0].Evidence[0], "oom_kill 1 in "+proc.CgroupRoot+"/unified/system.slice/nginx.service/memory.events") {
		t.Errorf("v2 with a kill: %+v", got)
	}
}

// TestKeyGrowth: keys per reload over the samples of one master; a
// rotated log (the count falls) and other masters' samples are skipped.
func TestKeyGrowth(t *testing.T) {
	m, other := ipcguard.ProcKey{PID: 10, StartTicks: 5}, ipcguard.ProcKey{PID: 10, StartTicks: 6}
	at := time.Date(2026, 11, 29, 3, 0, 0, 0, time.UTC)
	s := func(k ipcguard.ProcKey, reloads, keys int) growth.Sample {
		at = at.Add(time.Hour)
		return growth.Sample{Taken: at, Master: k, Reloads: reloads, PthreadKeys: keys}
	}
	if _, ok := growth.FindKeyGrowth([]growth.Sample{s(m, 3, 100), s(m, 3, 100)}, m); ok {
		t.Error("no reload between the samples, yet growth was measured")
	}
	g, ok := growth.FindKeyGrowth([]growth.Sample{s(m, 1, 100), s(other, 9, 900), s(m, 3, 110), s(m, 0, 110), s(m, 2, 120), s(m, 2, -1)}, m)
	if !ok || g.Reloads != 4 || g.Keys != 20 || g.PerReload() != 5 || g.From.PthreadKeys != 100 || g.To.PthreadKeys != 120 {
		t.Fatalf("growth %+v %v", g, ok)
	}
	if g, ok := growth.FindKeyGrowth([]growth.Sample{s(m, 1, 100), s(m, 5, 100)}, m); !ok || g.Keys != 0 {
		t.Fatalf("a module that leaks nothing: %+v %v", g, ok)
	}
}

// TestKeyRise: keys gained between samples whose reload count did not
// rise (unknown, unchanged, fallen) are summed over the time those pairs
// span; pairs with a counted reload, unreadable keys and other masters'
// samples are left out; no rise, or keys that fell back, is no finding.
func TestKeyRise(t *testing.T) {
	m, other := ipcguard.ProcKey{PID: 10, StartTicks: 5}, ipcguard.ProcKey{PID: 10, StartTicks: 6}
	at := time.Date(2026, 11, 29, 3, 0, 0, 0, time.UTC)
	s := func(k ipcguard.ProcKey, reloads, keys int) growth.Sample {
		at = at.Add(6 * time.Hour)
		return growth.Sample{Taken: at, Master: k, Reloads: reloads, PthreadKeys: keys}
	}
	samples := []growth.Sample{
		s(m, 2, 100),
		s(m, 2, 110),     // unchanged: +10 in 6 h
		s(other, 0, 900), // another master
		s(m, 4, 160),     // counted reloads: FindKeyGrowth's, skipped (12 h)
		s(m, -1, 170),    // unknown: +10 in 6 h
		s(m, 1, 180),     // unknown before: +10 in 6 h
		s(m, 0, 200),     // fallen (rotated log): +20 in 6 h
		s(m, 0, -1),      // unreadable keys: skipped twice
		s(m, 0, 210),
	}
	r, ok := growth.FindKeyRise(samples, m)
	if !ok || r.Keys != 50 || r.Elapsed != 24*time.Hour || r.PerDay() != 50 || r.From.PthreadKeys != 100 || r.To.PthreadKeys != 200 {
		t.Fatalf("rise %+v %v", r, ok)
	}
	for name, ss := range map[string][]growth.Sample{
		"flat":        {s(m, 3, 100), s(m, 3, 100), s(m, -1, 100)},
		"fell back":   {s(m, 3, 100), s(m, 3, 120), s(m, 3, 90)},
		"only reload": {s(m, 3, 100), s(m, 5, 200)},
		"one sample":  {s(m, 3, 100)},
	} {
		if r, ok := growth.FindKeyRise(ss, m); ok {
			t.Errorf("%s: rise reported: %+v", name, r)
		}
	}
	st := supervise.Status{Service: "apache2", Master: &ipcguard.Proc{PID: 10, StartTicks: 5}, PthreadKeys: 200, Reloads: 0}
	fs := keyFindings(st, samples, true)
	if len(fs) != 2 || fs[0].Check != "pthread-keys-growth" || fs[1].Check != "pthread-keys-rising" {
		t.Fatalf("findings %+v", fs)
	}
	f := fs[1]
	ev := strings.Join(f.Evidence, "\n")
	for _, want := range []string{"100 keys at 2026-11-29 09:00:00 (reloads logged: 2)", "200 keys at 2026-11-30 21:00:00 (reloads logged: 0)",
		"+50 keys in 24h0m0s of samples", "50.0 keys per day", "824 of 1024 keys left: about 16.5 days at this rate"} {
		if !strings.Contains(ev, want) {
			t.Errorf("evidence lacks %q:\n%s", want, ev)
		}
	}
	if f.Severity != Warning || !strings.Contains(f.Summary, "gained 50 pthread keys while no reload was counted") {
		t.Errorf("finding %+v", f)
	}
	if fs := keyFindings(st, samples, false); len(fs) != 0 {
		t.Errorf("php-fpm (re-executed by its reload): %+v", fs)
	}
	if got := daysText(0.25); got != "6h0m0s" {
		t.Errorf("daysText(0.25) = %q", got)
	}
}

// TestMemGrowth: steady growth of the same workers is found; a one-off
// warm-up, a single late jump (not along a line, as run's memory watch
// judges it too), too few samples, and replaced workers are not.
func TestMemGrowth(t *testing.T) {
	m := ipcguard.ProcKey{PID: 10, StartTicks: 5}
	w1, w2, w3 := ipcguard.ProcKey{PID: 11, StartTicks: 6}, ipcguard.ProcKey{PID: 12, StartTicks: 6}, ipcguard.ProcKey{PID: 13, StartTicks: 99}
	series := func(pss ...int64) []growth.Sample {
		var out []growth.Sample
		for i, p := range pss {
			out = append(out, growth.Sample{Taken: time.Unix(int64(i), 0), Master: m, Workers: []growth.WorkerSample{
				{Proc: w1, Pool: "www", PSSKiB: p}, {Proc: w2, Pool: "www", PSSKiB: p}, {Proc: w3, Pool: "other", PSSKiB: 1 << 30}}})
		}
		return out
	}
	if g, ok := growth.FindMemGrowth(series(5000, 7000, 9000, 13000), m, "www"); !ok || g.Workers != 2 || g.Series[0] != 10000 || g.Series[3] != 26000 {
		t.Fatalf("steady growth: %+v %v", g, ok)
	}
	for name, s := range map[string][]growth.Sample{
		"warm-up":     series(5000, 12000, 12000, 12100),
		"a late jump": series(5000, 5050, 5100, 15000), // one big request: no line (R² 0.61), as run's watch judges it
		"two samples": series(5000, 50000),
		"small":       series(5000, 5500, 6000, 6500),
		"other pool":  nil,
	} {
		if g, ok := growth.FindMemGrowth(s, m, "www"); ok {
			t.Errorf("%s: growth reported: %+v", name, g)
		}
	}
	replaced := series(5000, 7000, 9000, 13000)
	replaced[3].Workers[0].Proc = ipcguard.ProcKey{PID: 11, StartTicks: 7}
	replaced[3].Workers[1].Proc = ipcguard.ProcKey{PID: 12, StartTicks: 7}
	if g, ok := growth.FindMemGrowth(replaced, m, "www"); ok {
		t.Errorf("recycled workers taken for the same: %+v", g)
	}
}

// writeTree writes a file, creating its directories.
func writeTree(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, text)
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestUnitFindings: doctor names what in systemd's view is wrong, and says
// so apart when systemd could not be asked at all.
func TestUnitFindings(t *testing.T) {
	cantAsk := supervise.Status{Service: "apache2", UnitErr: fmt.Errorf("%w: systemctl show apache2.service: exit status 1", systemd.ErrServiceManager)}
	if f := unitFindings(cantAsk); len(f) != 1 || !strings.Contains(f[0].Summary, "cannot ask systemd") {
		t.Errorf("doctor with systemd unreadable: %+v", f)
	}
	failed := supervise.Status{Service: "apache2", Unit: &systemd.Unit{Name: "apache2.service", Active: "failed", Sub: "failed"}}
	if f := unitFindings(failed); len(f) != 1 || !strings.Contains(f[0].Evidence[0], "unit apache2.service failed") {
		t.Errorf("doctor with a failed unit: %+v", f)
	}
	if f := unitFindings(supervise.Status{Service: "apache2"}); len(f) != 0 {
		t.Errorf("doctor without a unit: %+v", f)
	}
}

// writeFile writes s to path, failing the test on an error.
func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
