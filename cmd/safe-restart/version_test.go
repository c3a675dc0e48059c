package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

// TestResolveBuild: the link-time stamp wins; without it the module's
// build info answers (go install ...@v1.2.0, a checkout's VCS stamp, a
// modified tree); what neither says is "unknown".
func TestResolveBuild(t *testing.T) {
	vcs := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	checkout := &debug.BuildInfo{Main: debug.Module{Version: "(devel)"},
		Settings: vcs("vcs.revision", "2e1284d", "vcs.time", "2026-12-06T22:10:20Z", "vcs.modified", "false")}
	for _, tt := range []struct {
		name                  string
		bi                    *debug.BuildInfo
		stamp                 [3]string
		version, commit, date string
	}{
		{"stamped", checkout, [3]string{"v1.0.0", "abc", "2026-01-01T00:00:00Z"}, "v1.0.0", "abc", "2026-01-01T00:00:00Z"},
		{"go install @version", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.0"}}, [3]string{}, "v1.2.0", unknown, unknown},
		{"checkout", checkout, [3]string{}, "(devel)", "2e1284d", "2026-12-06T22:10:20Z"},
		{"modified checkout", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("vcs.revision", "2e1284d", "vcs.modified", "true")},
			[3]string{}, "(devel)", "2e1284d+dirty", unknown},
		{"no build info", nil, [3]string{}, unknown, unknown, unknown},
	} {
		b := resolveBuild(tt.bi, tt.stamp[0], tt.stamp[1], tt.stamp[2])
		if b.Version != tt.version || b.Commit != tt.commit || b.BuildDate != tt.date || !strings.HasPrefix(b.GoVersion, "go") || b.Platform == "" {
			t.Errorf("%s: got %+v, want version %q commit %q date %q", tt.name, b, tt.version, tt.commit, tt.date)
		}
	}
}

// TestVersionCommand: --version and version print the same four facts;
// version --json prints them as an object; SERVICE --version records
// nothing.
func TestVersionCommand(t *testing.T) {
	code, flagOut, _ := runCLI(t, "--version", "--state-dir", t.TempDir()) // root is also the reload
	if code != exitOK || flagOut != build().String() {
		t.Fatalf("--version: exit %d, %q; want %q", code, flagOut, build().String())
	}
	for _, want := range []string{"safe-restart " + build().Version, "commit:", "build date:", "go version: go"} {
		if !strings.Contains(flagOut, want) {
			t.Errorf("--version printed %q, want %q in it", flagOut, want)
		}
	}
	// After a SERVICE, cobra prints the version and runs nothing: no
	// reload is recorded as the service's last operation.
	state := t.TempDir()
	if code, out, _ := runCLI(t, "nginx", "--version", "--state-dir", state); code != exitOK || out != flagOut {
		t.Errorf("nginx --version: exit %d, %q; want %q", code, out, flagOut)
	}
	if recs, _ := filepath.Glob(filepath.Join(state, "last-operation", "*")); len(recs) != 0 {
		t.Errorf("nginx --version recorded a last operation: %v", recs)
	}
	if code, out, _ := runCLI(t, "version"); code != exitOK || out != flagOut {
		t.Errorf("version: exit %d, %q; want %q", code, out, flagOut)
	}
	code, out, _ := runCLI(t, "version", "--json")
	var got buildInfo
	if err := json.Unmarshal([]byte(out), &got); code != exitOK || err != nil || got != build() {
		t.Errorf("version --json: exit %d, %v, %+v; want %+v", code, err, got, build())
	}
}

// TestWriteJSONCarriesBuild: a report (an object) gets "safe_restart"
// first and keeps its own members; an array is written as it is.
func TestWriteJSONCarriesBuild(t *testing.T) {
	for _, v := range []any{struct {
		Service string `json:"service"`
	}{"apache2"}, struct{}{}} {
		var buf bytes.Buffer
		if err := writeJSON(&buf, v); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(buf.String(), "{\n  \"safe_restart\": {") {
			t.Errorf("writeJSON(%+v) = %s, want safe_restart first", v, buf.String())
		}
		var got struct {
			Build   buildInfo `json:"safe_restart"`
			Service string    `json:"service"`
		}
		if err := json.Unmarshal(buf.Bytes(), &got); err != nil || got.Build != build() {
			t.Errorf("writeJSON(%+v) = %s: %v, build %+v", v, buf.String(), err, got.Build)
		}
		if _, ok := v.(struct{}); !ok && got.Service != "apache2" {
			t.Errorf("writeJSON lost the report's own member: %s", buf.String())
		}
	}
	var buf bytes.Buffer
	if err := writeJSON(&buf, []int{1, 2}); err != nil || buf.String() != "[\n  1,\n  2\n]\n" {
		t.Errorf("writeJSON([1 2]) = %q, %v", buf.String(), err)
	}
}

// TestManPages: one page per command, EXIT STATUS on each, FILES and
// ENVIRONMENT on safe-restart(1), all before EXAMPLE (man-pages(7)
// order); the same bytes when written twice (a reproducible package).
func TestManPages(t *testing.T) {
	dirs := [2]string{t.TempDir(), t.TempDir()}
	for _, dir := range dirs {
		if code, _, errOut := runCLI(t, "man", dir); code != exitOK {
			t.Fatalf("man %s: exit %d: %s", dir, code, errOut)
		}
	}
	for _, name := range []string{"safe-restart", "safe-restart-reload", "safe-restart-restart", "safe-restart-start", "safe-restart-stop",
		"safe-restart-status", "safe-restart-doctor", "safe-restart-metrics", "safe-restart-run", "safe-restart-ipc-reap",
		"safe-restart-systemd-install", "safe-restart-version", "safe-restart-completion-bash"} {
		page, err := os.ReadFile(filepath.Join(dirs[0], name+".1"))
		if err != nil {
			t.Errorf("no page for %s: %v", name, err)
			continue
		}
		sections := []string{".SH NAME", ".SH SYNOPSIS", ".SH DESCRIPTION", ".SH EXIT STATUS", ".SH EXAMPLE"}
		switch {
		case strings.HasPrefix(name, "safe-restart-completion"): // cobra's, with no examples
			sections = sections[:4]
		case name == "safe-restart":
			sections = []string{".SH NAME", ".SH OPTIONS", ".SH EXIT STATUS", ".SH ENVIRONMENT", ".SH FILES", ".SH EXAMPLE", ".SH SEE ALSO"}
		}
		checkOrder(t, name, string(page), sections)
		again, _ := os.ReadFile(filepath.Join(dirs[1], name+".1"))
		if !bytes.Equal(page, again) {
			t.Errorf("%s.1 differs between two runs", name)
		}
	}
	root, _ := os.ReadFile(filepath.Join(dirs[0], "safe-restart.1"))
	for _, want := range []string{"/run/safe-restart", "/etc/safe-restart", "refused before acting", "NOTIFY_SOCKET"} {
		if !bytes.Contains(root, []byte(want)) {
			t.Errorf("safe-restart.1 does not mention %q", want)
		}
	}
	if !bytes.Contains(root, []byte(`\fB--version\fP`)) {
		t.Error("safe-restart.1 does not list --version")
	}
	doctor, _ := os.ReadFile(filepath.Join(dirs[0], "safe-restart-doctor.1"))
	if !bytes.Contains(doctor, []byte("risks found")) || bytes.Contains(doctor, []byte("recovered the service")) {
		t.Errorf("safe-restart-doctor.1 has the operations' exit codes, not its own:\n%s", doctor)
	}
	if bytes.Contains(root, []byte("Exit codes:")) {
		t.Error("safe-restart.1 repeats --help's exit-code table in its DESCRIPTION")
	}
	if entries, _ := os.ReadDir(dirs[0]); len(entries) < 20 {
		t.Errorf("%d pages, want one per command", len(entries))
	}
}

// checkOrder fails unless each of sections appears in page, in order.
func checkOrder(t *testing.T, name, page string, sections []string) {
	t.Helper()
	at := 0
	for _, s := range sections {
		i := strings.Index(page[at:], s+"\n")
		if i < 0 {
			t.Errorf("%s.1: no %q after byte %d", name, s, at)
			return
		}
		at += i
	}
}
