package metrics

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/safe-restart/safe-restart/internal/promtest"
	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise"
	"github.com/safe-restart/safe-restart/supervise/generation"
	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/verify"
)

// TestMetricsExposition renders crafted facts, parses the text back and
// checks every value, that unknown facts have no series (absent, not 0),
// and that promtool's linter accepts the names, types and help.
func TestMetricsExposition(t *testing.T) {
	taken := time.Unix(1_700_000_000, 500_000_000)
	masterStart := time.Unix(1_699_990_000, 0)
	judged := func(kinds ...ipcguard.Kind) ipcguard.Report {
		r := ipcguard.Report{Judgements: []ipcguard.Judgement{{Kind: ipcguard.KindSem, ID: 1, Verdict: ipcguard.Live}}}
		for i, k := range kinds {
			r.Judgements = append(r.Judgements, ipcguard.Judgement{Kind: k, ID: 10 + i, Verdict: ipcguard.Orphan})
		}
		return r
	}
	facts := Facts{
		Taken: taken,
		IPC: &ipcguard.Snapshot{
			Usage:  ipcguard.Usage{SemSets: 100, Sems: 150, ShmSegs: 2, MsgQueues: 1},
			Limits: ipcguard.Limits{SEMMNI: 128, SEMMNS: 32000, SHMMNI: 4096, MSGMNI: 32000},
		},
		Services: []ServiceFacts{
			{Name: "apache2", IPCJudged: true, Status: &supervise.Status{
				Master: &ipcguard.Proc{PID: 42, Start: masterStart}, Reloads: 7, PthreadKeys: 913, Orphans: []int{50, 51},
				IPC: judged(ipcguard.KindSem, ipcguard.KindSem, ipcguard.KindPosix)}},
			{Name: "nginx", ServeErr: errors.New("health check: 502"), Status: &supervise.Status{
				Master: &ipcguard.Proc{PID: 43, Start: masterStart}, Reloads: -1, PthreadKeys: -1,
				Generation: &generation.Report{Loaded: masterStart.Add(time.Hour),
					Changed:  []generation.File{{Path: "/etc/nginx/nginx.conf"}, {Path: "/etc/nginx/cert.pem"}},
					Replaced: proc.Replaced{Exe: "/usr/sbin/nginx", Libraries: []string{"/usr/lib/libssl.so.3"}},
					TLS: []generation.Served{{Listener: "0.0.0.0:443", NotAfter: time.Unix(1_710_000_000, 0), NotServed: "/etc/nginx/cert.pem"},
						{Listener: "0.0.0.0:443", ServerName: "b.test", NotAfter: time.Unix(1_720_000_000, 0)}},
					Old: []generation.OldProc{{PID: 60}, {PID: 61}}}}},
			{Name: "php8.2-fpm", Err: errors.New("config test failed")},
			{Name: "httpd", IPCJudged: true, Status: &supervise.Status{Reloads: -1, PthreadKeys: -1, NotRunning: "no pidfile"}},
		},
		LastOps: []supervise.LastOperation{
			{Service: "apache2", Op: "reload", ExitCode: 3, Started: taken.Add(-time.Minute), Duration: 1500 * time.Millisecond},
			{Service: "nginx", Op: "restart", ExitCode: 0, Started: taken.Add(-time.Hour), Duration: 2 * time.Second,
				Receipt: &verify.Receipt{Answered: 90, Refused: 7, Reset: 1, LongestGap: 40 * time.Millisecond, Verified: 1200 * time.Millisecond}},
		},
		Build: map[string]string{"version": "v1.2.0", "commit": "abc", "build_date": "2026-12-06T00:00:00Z", "go_version": "go1.26.8"},
	}
	text := renderFacts(t, facts)
	m := promtest.Parse(t, text)
	for _, c := range []struct {
		name   string
		labels string
		want   float64
	}{
		{"safe_restart_metrics_timestamp_seconds", "", 1_700_000_000.5},
		{"safe_restart_build_info", "build_date=2026-12-06T00:00:00Z,commit=abc,go_version=go1.26.8,version=v1.2.0", 1},
		{"safe_restart_sysv_sem_sets", "", 100},
		{"safe_restart_sysv_sem_sets_limit", "", 128},
		{"safe_restart_sysv_semaphores", "", 150},
		{"safe_restart_sysv_semaphores_limit", "", 32000},
		{"safe_restart_sysv_shm_segments", "", 2},
		{"safe_restart_sysv_msg_queues_limit", "", 32000},
		{"safe_restart_pthread_keys_limit", "", 1024},
		{"safe_restart_status_success", "service=apache2", 1},
		{"safe_restart_status_success", "service=php8.2-fpm", 0},
		{"safe_restart_server_up", "service=apache2", 1},
		{"safe_restart_server_up", "service=nginx", 0},
		{"safe_restart_server_up", "service=httpd", 0},
		{"safe_restart_master_start_time_seconds", "service=apache2", 1_699_990_000},
		{"safe_restart_reloads_since_master_start", "service=apache2", 7},
		{"safe_restart_pthread_keys_used", "service=apache2", 913},
		{"safe_restart_orphaned_workers", "service=apache2", 2},
		{"safe_restart_orphaned_workers", "service=nginx", 0},
		{"safe_restart_ipc_orphaned_objects", "kind=sem,service=apache2", 2},
		{"safe_restart_ipc_orphaned_objects", "kind=posix,service=apache2", 1},
		{"safe_restart_ipc_orphaned_objects", "kind=shm,service=apache2", 0},
		{"safe_restart_ipc_orphaned_objects", "kind=msg,service=httpd", 0},
		{"safe_restart_last_operation_success", "op=reload,service=apache2", 0},
		{"safe_restart_last_operation_exit_code", "op=reload,service=apache2", 3},
		{"safe_restart_last_operation_duration_seconds", "op=reload,service=apache2", 1.5},
		{"safe_restart_last_operation_timestamp_seconds", "op=reload,service=apache2", 1_700_000_000.5 - 60 + 1.5},
		{"safe_restart_last_operation_success", "op=restart,service=nginx", 1},
		{"safe_restart_last_operation_exit_code", "op=restart,service=nginx", 0},
		{"safe_restart_last_operation_probes", "op=restart,outcome=answered,service=nginx", 90},
		{"safe_restart_last_operation_probes", "op=restart,outcome=refused,service=nginx", 7},
		{"safe_restart_last_operation_probes", "op=restart,outcome=reset,service=nginx", 1},
		{"safe_restart_last_operation_probes", "op=restart,outcome=failed,service=nginx", 0},
		{"safe_restart_last_operation_longest_gap_seconds", "op=restart,service=nginx", 0.04},
		{"safe_restart_last_operation_until_verified_seconds", "op=restart,service=nginx", 1.2},
		{"safe_restart_generation_loaded_timestamp_seconds", "service=nginx", 1_699_990_000 + 3600},
		{"safe_restart_config_files_changed", "service=nginx", 2},
		{"safe_restart_binary_replaced", "service=nginx", 1},
		{"safe_restart_libraries_replaced", "service=nginx", 1},
		{"safe_restart_tls_certificates_not_served", "service=nginx", 1},
		{"safe_restart_tls_certificate_expiry_timestamp_seconds", "listener=0.0.0.0:443,server_name=,service=nginx", 1_710_000_000},
		{"safe_restart_tls_certificate_expiry_timestamp_seconds", "listener=0.0.0.0:443,server_name=b.test,service=nginx", 1_720_000_000},
		{"safe_restart_old_generation_processes", "service=nginx", 2},
		{"safe_restart_old_generation_draining_since_timestamp_seconds", "service=nginx", 1_699_990_000 + 3600},
	} {
		got, ok := m[c.name+"{"+c.labels+"}"]
		if !ok || got != c.want {
			t.Errorf("%s{%s} = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	// Unknown is absent: nginx logs no reload count and its keys were not
	// read; a stopped server has no master start time; a service without
	// an IPC signature has no orphan count; an unreadable one has no up.
	for _, absent := range []string{
		"safe_restart_reloads_since_master_start{service=nginx}",
		"safe_restart_pthread_keys_used{service=nginx}",
		"safe_restart_master_start_time_seconds{service=httpd}",
		"safe_restart_reloads_since_master_start{service=httpd}",
		"safe_restart_ipc_orphaned_objects{kind=sem,service=nginx}",
		"safe_restart_server_up{service=php8.2-fpm}",
		"safe_restart_generation_loaded_timestamp_seconds{service=apache2}",
		"safe_restart_last_operation_probes{op=reload,outcome=answered,service=apache2}",
	} {
		if v, ok := m[absent]; ok {
			t.Errorf("%s = %v, want no series", absent, v)
		}
	}
	promtest.Check(t, text)
}

// TestMetricsExpositionWithoutFacts: no IPC snapshot, no service, no
// record: only the timestamp and the pthread key limit, still valid.
func TestMetricsExpositionWithoutFacts(t *testing.T) {
	text := renderFacts(t, Facts{Taken: time.Unix(1, 0)})
	m := promtest.Parse(t, text)
	if len(m) != 2 || m["safe_restart_metrics_timestamp_seconds{}"] != 1 || m["safe_restart_pthread_keys_limit{}"] != 1024 {
		t.Fatalf("got %v\n%s", m, text)
	}
	promtest.Check(t, text)
}

// renderFacts registers facts and renders them in the text format, as
// the metrics command prints them.
func renderFacts(t *testing.T, facts Facts) string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	facts.Register(reg)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&out, mf); err != nil {
			t.Fatal(err)
		}
	}
	return out.String()
}
