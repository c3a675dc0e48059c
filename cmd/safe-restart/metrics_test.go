package main

import (
	"strings"
	"testing"
)

// TestMetricsUsage: flags that name one server refuse several services,
// and a textfile node_exporter would not read is refused; exit 2.
func TestMetricsUsage(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"metrics", "apache2", "nginx", "--conf", "/etc/apache2/apache2.conf"}, "--conf, --health-url and --status-url describe one server; got 2 services"},
		{[]string{"metrics", "--status-url", "http://127.0.0.1/server-status?auto"}, "got 0 services"},
		{[]string{"metrics", "apache2", "--status-url", "127.0.0.1/server-status"}, `bad --status-url "127.0.0.1/server-status"`},
		{[]string{"metrics", "--health-url", "http://127.0.0.1/"}, "got 0 services"},
		{[]string{"metrics", "--textfile", "/tmp/safe-restart.txt"}, "reads only *.prom files"},
		{[]string{"metrics", "--timeout", "0s"}, "bad --timeout 0s"},
		{[]string{"metrics", "nosuch", "--service-dir", t.TempDir()}, "nosuch.toml either"},
	} {
		code, _, errOut := runCLI(t, append(tt.args, "--state-dir", t.TempDir())...)
		if code != exitUsage || !strings.Contains(errOut, tt.want) {
			t.Errorf("%v: exit %d, %q; want exit %d and %q", tt.args, code, errOut, exitUsage, tt.want)
		}
	}
}
