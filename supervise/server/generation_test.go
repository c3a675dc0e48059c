package server

import (
	"testing"
	"time"

	"github.com/safe-restart/safe-restart/ipcguard"
)

// TestLoadedLogged: the last line of the master's that follows a load, in
// the servers' default time formats; another pid's line, a custom format
// or no such line gives none.
func TestLoadedLogged(t *testing.T) {
	master := ipcguard.Proc{PID: 41}
	at := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04:05.000000", s, time.Local)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	apacheLog := `[Sun Dec 06 10:00:00.100000 2026] [mpm_event:notice] [pid 41:tid 1] AH00489: Apache/2.4.62 (Debian) configured -- resuming normal operations
[Sun Dec 06 11:00:00.000000 2026] [mpm_event:notice] [pid 41:tid 1] AH00493: SIGUSR1 received.  Doing graceful restart
[Sun Dec 06 11:00:00.250000 2026] [mpm_event:notice] [pid 41:tid 1] AH00489: Apache/2.4.62 (Debian) configured -- resuming normal operations
[Sun Dec 06 12:00:00.000000 2026] [mpm_event:notice] [pid 42:tid 1] AH00489: Apache/2.4.62 (Debian) configured -- resuming normal operations
[Sun Dec 06 12:30:00.000000 2026] [core:error] [pid 77:tid 1] [client 127.0.0.1:1] AH00128: File does not exist`
	fpmLog := `[06-Dec-2026 10:00:00] NOTICE: fpm is running, pid 41
[06-Dec-2026 11:00:00] NOTICE: Reloading in progress ...
[06-Dec-2026 11:00:01] NOTICE: fpm is running, pid 41
[06-Dec-2026 11:00:01] NOTICE: ready to handle connections`
	tests := []struct {
		name string
		l    LoadLogger
		log  string
		want time.Time
		ok   bool
	}{
		{"apache: the last resuming of the master", apacheKind{}, apacheLog, at("2026-12-06 11:00:00.250000"), true},
		{"apache: a custom ErrorLogFormat", apacheKind{}, "Dec 06 AH00489 [pid 41:tid 1] resuming normal operations", time.Time{}, false},
		{"apache: another master's log", apacheKind{}, "[Sun Dec 06 12:00:00.000000 2026] [mpm_event:notice] [pid 42:tid 1] AH00489: resuming", time.Time{}, false},
		{"php-fpm: the re-executed master", fpmKind{}, fpmLog, at("2026-12-06 11:00:01.000000"), true},
		{"php-fpm: no line of this master", fpmKind{}, "[06-Dec-2026 10:00:00] NOTICE: fpm is running, pid 411", time.Time{}, false},
	}
	for _, tt := range tests {
		got, _, ok := tt.l.LoadedLogged(tt.log, master)
		if ok != tt.ok || (ok && !got.Equal(tt.want)) {
			t.Errorf("%s: %v %v, want %v %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
	if !(nginxKind{}).Draining("nginx: worker process is shutting down") || (nginxKind{}).Draining("nginx: worker process") {
		t.Error("nginx's draining title")
	}
}

// TestNginxTime: the forms nginx accepts for worker_shutdown_timeout.
func TestNginxTime(t *testing.T) {
	for v, want := range map[string]time.Duration{
		"30": 30 * time.Second, "500ms": 500 * time.Millisecond, "1h 30m": 90 * time.Minute, "1m30s": 90 * time.Second,
		"2d": 48 * time.Hour, "1w": 7 * 24 * time.Hour, "1M": 30 * 24 * time.Hour, "1y": 365 * 24 * time.Hour,
	} {
		if got, err := nginxTime(v); err != nil || got != want {
			t.Errorf("nginxTime(%q) = %v, %v; want %v", v, got, err, want)
		}
	}
	for _, bad := range []string{"", "s", "10x", "1h x"} {
		if _, err := nginxTime(bad); err == nil {
			t.Errorf("nginxTime(%q): no error", bad)
		}
	}
}
