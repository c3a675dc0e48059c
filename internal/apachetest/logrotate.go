package apachetest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// logrotateConf is Debian's /etc/logrotate.d/apache2 for one error log:
// the log is renamed to .1, the previous .1 is compressed to .2.gz
// (compress, delaycompress), a new file is created, and the server is
// reloaded gracefully (Debian's postrotate runs `invoke-rc.d apache2
// reload`, that is apache2ctl graceful) so that it reopens the log.
const logrotateConf = `%s {
	rotate 14
	compress
	delaycompress
	create 640
	postrotate
		%s -f %s -k graceful
	endscript
}
`

// Logrotate runs the real logrotate on the error log, forced, with
// Debian's options and postrotate, and waits until the master reopened
// the log ("resuming normal operations" in the new file) and serves.
func (s *Server) Logrotate() {
	s.t.Helper()
	conf := filepath.Join(s.Dir, "logrotate.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(logrotateConf, s.ErrorLog, s.Bin, s.ConfPath)), 0o644); err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.Config.StartTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "logrotate", "-f", "-s", filepath.Join(s.Dir, "logrotate.state"), conf)
	cmd.Env = append(Env(), s.Token)
	if out, err := cmd.CombinedOutput(); err != nil {
		s.t.Fatalf("apachetest: logrotate: %v\n%s", err, out)
	}
	deadline := time.Now().Add(s.Config.StartTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !strings.Contains(s.ErrorLogText(), resumingMsg) {
		if !s.Master().Alive() {
			s.t.Fatalf("apachetest: master died during logrotate's reload\n%s", s.diagnostics())
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("apachetest: no %q in the new log after logrotate\n%s", resumingMsg, s.diagnostics())
		}
		<-tick.C
	}
	if err := s.waitReady(deadline); err != nil {
		s.t.Fatalf("apachetest: after logrotate: %v\n%s", err, s.diagnostics())
	}
}
