package server

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/safe-restart/safe-restart/internal/fpmtest"
	"github.com/safe-restart/safe-restart/internal/nstest"
)

// TestFPMDumpSilencedByLogLevel runs the real `php-fpm8.2 -tt` on one
// config at log_level = notice and at warning: the notice run prints the
// dump (the parser finds the pidfile), the warning run prints nothing
// (php-fpm 8.2.x: empty stdout and stderr, exit 0), so no dump is found
// in it, and RunConfig reads the config through its log_level = notice
// wrapper instead, flagging the quiet log.
func TestFPMDumpSilencedByLogLevel(t *testing.T) {
	nstest.RequireBinaries(t, fpmtest.Binary)
	dir := t.TempDir()
	conf := func(level string) string {
		path := filepath.Join(dir, level+".conf")
		text := fmt.Sprintf("[global]\npid = %s/fpm.pid\nerror_log = %s/fpm.log\nlog_level = %s\n"+
			"[www]\nlisten = %s/www.sock\npm = static\npm.max_children = 1\n", dir, dir, level, dir)
		if os.Geteuid() == 0 {
			text += "user = www-data\n" // required of root
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	dump := func(path string) string {
		out, err := exec.Command(fpmtest.Binary, "-tt", "-y", path).CombinedOutput()
		if err != nil {
			t.Fatalf("%s -tt -y %s: %v\n%s", fpmtest.Binary, path, err, out)
		}
		return string(out)
	}
	if d, ok := parseFPMDump(dump(conf("notice"))); !ok || d.global["pid"] != dir+"/fpm.pid" {
		t.Fatalf("log_level = notice: dump found %v, global %v", ok, d.global)
	}
	warning := conf("warning")
	out := dump(warning)
	if _, ok := parseFPMDump(out); ok {
		t.Errorf("log_level = warning: a dump was found in %q", out)
	}
	p, err := LookupProfile("php8.2-fpm")
	if err != nil {
		t.Fatal(err)
	}
	p.Binary = fpmtest.Binary
	rc, err := fpmKind{}.RunConfig(context.Background(), p, warning)
	if err != nil || !rc.QuietLog || rc.PidFile != dir+"/fpm.pid" {
		t.Fatalf("runConfig at log_level = warning: %v, quiet %v, pid %q (output of -tt: %q)", err, rc.QuietLog, rc.PidFile, out)
	}
	t.Logf("php-fpm -tt at log_level = warning printed %q", out)
}
