//go:build linux

package supervise

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/internal/fpmtest"
	"github.com/safe-restart/safe-restart/internal/nstest"
	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/server"
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
	p, err := server.LookupProfile("php8.2-fpm")
	if err != nil {
		t.Fatal(err)
	}
	p.Binary = srv.Bin
	log := zerolog.New(zerolog.NewTestWriter(t))
	o := ReloadOptions{Start: StartOptions{Profile: p, Conf: srv.ConfPath, LineageDir: t.TempDir(), IntentDir: t.TempDir(), Log: log},
		Stop: StopOptions{Ladder: server.FPMLadder(0), Log: log}}
	ctx := context.Background()
	sig, rc, err := p.Prepare(ctx, srv.ConfPath, log)
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
