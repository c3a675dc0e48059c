package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/safe-restart/safe-restart/internal/apachetest"
	"github.com/safe-restart/safe-restart/internal/nstest"
	"github.com/safe-restart/safe-restart/internal/promtest"
)

const prometheusExamples = "../../examples/prometheus/"

// TestPrometheusRules: the alert rules pass `promtool check rules`, and
// `promtool test rules` proves each alert fires on crafted series of a
// sick host and not on the healthy and borderline ones beside them.
func TestPrometheusRules(t *testing.T) {
	nstest.RequireBinaries(t, "promtool")
	for _, args := range [][]string{
		{"check", "rules", "safe-restart.rules.yml"},
		{"test", "rules", "safe-restart.rules.test.yml"},
	} {
		cmd := exec.Command("promtool", args...)
		cmd.Dir = prometheusExamples
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("promtool %v: %v\n%s", args, err, out)
		}
	}
}

// TestMetricsCronExample runs the command of examples/prometheus/
// safe-restart.cron against a real Apache, after a reload through the
// CLI: the textfile it writes passes promtool, says the server is up, and
// has a series for every metric the alert rules use (a rule on a
// misspelled metric would never fire).
func TestMetricsCronExample(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl", "promtool")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := apachetest.Start(t, apachetest.Config{MPM: "prefork", SysvSem: true})
	dir := t.TempDir()
	state, textfile := filepath.Join(dir, "state"), filepath.Join(dir, "safe-restart.prom")
	if code, out, errOut := runCLI(t, "reload", "apache2", "--conf", srv.ConfPath, "--state-dir", state); code != exitOK {
		t.Fatalf("reload: exit %d\n%s\n%s", code, out, errOut)
	}
	f := cronFields(t, prometheusExamples+"safe-restart.cron")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	command := strings.NewReplacer(
		"/usr/bin/safe-restart metrics apache2", self+" metrics apache2 --conf "+srv.ConfPath+" --state-dir "+state,
		"/var/lib/prometheus/node-exporter/safe-restart.prom", textfile,
		"/var/log/safe-restart.log", filepath.Join(dir, "safe-restart.log"),
	).Replace(strings.Join(f[6:], " "))
	if f[0] != "*" || f[5] != "root" || !strings.Contains(command, textfile) {
		t.Fatalf("not an every-minute cron.d line writing the textfile: %q", f)
	}
	cmd := exec.Command("/bin/sh", "-c", command)
	cmd.Env = append(os.Environ(), mainEnv+"=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s\n%s", command, err, out, readFile(t, filepath.Join(dir, "safe-restart.log")))
	}
	text := readFile(t, textfile)
	promtest.Check(t, text)
	m := promtest.Parse(t, text)
	wantMetric(t, m, "safe_restart_server_up{service=apache2}", 1)
	for _, name := range ruleMetrics(t) {
		if absentWhenNone[name] {
			continue
		}
		if !slices.ContainsFunc(keys(m), func(s string) bool { return strings.HasPrefix(s, name+"{") }) {
			t.Errorf("the rules use %s, which the textfile does not have:\n%s", name, text)
		}
	}
}

// absentWhenNone are the metrics the rules use that have a series only
// when there is something to say (a TLS listener, an older generation
// draining), which this Apache has not; TestNginxDrift reads each of them
// from a real nginx.
var absentWhenNone = map[string]bool{
	"safe_restart_tls_certificate_expiry_timestamp_seconds":        true,
	"safe_restart_old_generation_draining_since_timestamp_seconds": true,
}

// cronFields returns the fields of the one command line of a cron.d file.
func cronFields(t *testing.T, path string) []string {
	t.Helper()
	var line string
	for _, l := range strings.Split(readFile(t, path), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			line = l
		}
	}
	f := strings.Fields(line)
	if len(f) < 7 {
		t.Fatalf("%s: not a cron.d line (5 time fields, a user, a command): %q", path, line)
	}
	return f
}

// ruleMetrics returns the safe_restart_ metrics named in the rules file.
func ruleMetrics(t *testing.T) []string {
	t.Helper()
	names := regexp.MustCompile(`safe_restart_[a-z_]+`).FindAllString(readFile(t, prometheusExamples+"safe-restart.rules.yml"), -1)
	slices.Sort(names)
	names = slices.Compact(names)
	if len(names) < 10 {
		t.Fatalf("only %d metrics named in the rules: %v", len(names), names)
	}
	return names
}

func keys(m map[string]float64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
