//go:build linux

package supervise

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/internal/fpmtest"
	"github.com/safe-restart/safe-restart/internal/nstest"
	"github.com/safe-restart/safe-restart/supervise/proc"
)

// TestFPMReexecDiesOnBadConfig: the config is broken after the config
// test passed and before USR2 (the step Reload takes between prepare and
// signalAndVerify). php-fpm's re-exec dies on it; the recovery's start
// fails on the same config, so the reload fails (not "recovered"), naming
// the config error, and nothing of php-fpm is left running.
func TestFPMReexecDiesOnBadConfig(t *testing.T) {
	nstest.RequireBinaries(t, fpmtest.Binary)
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := fpmtest.Start(t, fpmtest.Config{Unix: true})
	p, err := LookupProfile("php8.2-fpm")
	if err != nil {
		t.Fatal(err)
	}
	p.Binary = srv.Bin
	log := zerolog.New(zerolog.NewTestWriter(t))
	o := ReloadOptions{Start: StartOptions{Profile: p, Conf: srv.ConfPath, LineageDir: t.TempDir(), IntentDir: t.TempDir(), Log: log},
		Stop: StopOptions{Ladder: FPMLadder(0), Log: log}}
	ctx := context.Background()
	sig, rc, err := p.prepare(ctx, srv.ConfPath, log)
	if err != nil {
		t.Fatal(err)
	}
	master, err := proc.FromPIDFile("/proc", rc.PidFile, p.Binary)
	if err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(srv.ConfPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(srv.ConfPath, append(good, "\nbogus = 1\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := o.signalAndVerify(ctx, "/proc", sig, rc, master, ReloadReport{})
	if !errors.Is(err, ErrReloadKilled) || !errors.Is(err, ErrStartFailed) || rep.Recovered ||
		!strings.Contains(err.Error(), "FPM initialization failed") || !strings.Contains(err.Error(), "unknown entry 'bogus'") {
		t.Fatalf("reload with a config broken before the signal: %v (recovered %v)", err, rep.Recovered)
	}
	t.Logf("the reload's error: %v", err)
	if ps := srv.Processes(); len(ps) != 0 {
		t.Fatalf("php-fpm processes left: %+v", ps)
	}
}

// TestFPMDumpSilencedByLogLevel runs the real `php-fpm8.2 -tt` on one
// config at log_level = notice and at warning: the notice run prints the
// dump (the parser finds the pidfile), the warning run prints nothing
// (php-fpm 8.2.x: empty stdout and stderr, exit 0), so no dump is found
// in it, and runConfig reads the config through its log_level = notice
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
	rc, err := fpmKind{}.runConfig(context.Background(), p, warning)
	if err != nil || !rc.QuietLog || rc.PidFile != dir+"/fpm.pid" {
		t.Fatalf("runConfig at log_level = warning: %v, quiet %v, pid %q (output of -tt: %q)", err, rc.QuietLog, rc.PidFile, out)
	}
	t.Logf("php-fpm -tt at log_level = warning printed %q", out)
}
