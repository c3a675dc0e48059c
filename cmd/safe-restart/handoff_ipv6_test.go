package main

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/safe-restart/safe-restart/internal/apachetest"
	"github.com/safe-restart/safe-restart/internal/fpmtest"
	"github.com/safe-restart/safe-restart/internal/nginxtest"
	"github.com/safe-restart/safe-restart/internal/nstest"
)

// freePort returns a port nothing listens on at host ("[::1]", "0.0.0.0").
func freePort(t *testing.T, network, host string) int {
	t.Helper()
	l, err := net.Listen(network, host+":0")
	if err != nil {
		t.Fatalf("listen %s %s: %v", network, host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// get200 fails unless GET url answers 200.
func get200(t *testing.T, url, when string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s %s: %v", url, when, err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s %s: %s", url, when, resp.Status)
	}
}

// TestNginxRestartHandoffIPv6: an IPv6 listener ([::1]:P) and a port-only
// one (0.0.0.0:P) are handed over like the IPv4 one, with the overlap, and
// each serves after the restart.
func TestNginxRestartHandoffIPv6(t *testing.T) {
	nstest.RequireBinaries(t, "nginx")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	v6, wild := freePort(t, "tcp6", "[::1]"), freePort(t, "tcp4", "0.0.0.0")
	srv := nginxtest.Start(t, nginxtest.Options{HTTPExtra: fmt.Sprintf("    server {\n        listen [::1]:%d;\n        listen %d;\n        return 200 \"more\\n\";\n    }", v6, wild)})
	old := nginxMaster(t, srv)
	rep, errOut := restartJSON(t, "nginx", "--conf", srv.ConfPath, "--state-dir", t.TempDir())
	checkHandedOver(t, rep, 3, errOut)
	checkOverlap(t, rep, nil, errOut)
	checkDetached(t, nginxMaster(t, srv), old, srv.MasterPID())
	for _, url := range []string{"http://" + srv.Addr + "/", fmt.Sprintf("http://[::1]:%d/", v6), fmt.Sprintf("http://127.0.0.1:%d/", wild)} {
		get200(t, url, "after the restart")
	}
}

// TestFPMRestartHandoffIPv6: php-fpm pools on [::1]:P and on a bare port
// (php-fpm binds [::]:P, dual stack) get their sockets back under the keys
// php-fpm computes ("::1:P", ":::P"): it logs each as inherited, and the
// overlap, which could not bind beside the old master, succeeds.
func TestFPMRestartHandoffIPv6(t *testing.T) {
	nstest.RequireBinaries(t, fpmtest.Binary)
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	v6, wild := freePort(t, "tcp6", "[::1]"), freePort(t, "tcp6", "[::]")
	pool := func(name, listen string) string {
		return fmt.Sprintf("\n[%s]\nuser = www-data\ngroup = www-data\nlisten = %s\npm = static\npm.max_children = 1\n", name, listen)
	}
	srv := fpmtest.Start(t, fpmtest.Config{Pool: pool("v6", fmt.Sprintf("[::1]:%d", v6)) + pool("wild", fmt.Sprint(wild))})
	rep, errOut := restartJSON(t, fpmService, "--conf", srv.ConfPath, "--state-dir", t.TempDir())
	checkHandedOver(t, rep, 3, errOut)
	checkOverlap(t, rep, nil, errOut)
	log := srv.ErrorLogText()
	for _, key := range []string{fmt.Sprintf(`"::1:%d"`, v6), fmt.Sprintf(`":::%d"`, wild)} {
		if !strings.Contains(log, "using inherited socket") || !strings.Contains(log, key) {
			t.Fatalf("php-fpm did not inherit %s:\n%s", key, log)
		}
	}
	mustServe(t, srv, "after the restart")
}

// TestOverlapRestartIPv6: Apache on [::1]:P and on the IPv6 wildcard
// [::]:P, started by safe-restart start, overlaps on its first restart,
// and serves on both after it.
func TestOverlapRestartIPv6(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	setMigrateReq(t, "1")
	v6, wild := freePort(t, "tcp6", "[::1]"), freePort(t, "tcp6", "[::]")
	srv := apachetest.Start(t, apachetest.Config{MPM: "event", Listen: []string{fmt.Sprintf("[::1]:%d", v6), fmt.Sprintf("[::]:%d", wild)}})
	state := t.TempDir()
	for _, cmd := range []string{"stop", "start"} {
		if code, out, errOut := runCLI(t, cmd, "apache2", "--conf", srv.ConfPath, "--state-dir", state); code != exitOK {
			t.Fatalf("%s: exit %d\n%s\n%s", cmd, code, out, errOut)
		}
	}
	code, rep, errOut := apacheRestartJSON(t, srv, state)
	if code != exitOK || !rep.Overlap || len(rep.Start.Listeners) != 2 {
		t.Fatalf("restart: exit %d, overlap %v (skipped: %q), listeners %v\n%s", code, rep.Overlap, rep.OverlapSkipped, rep.Start.Listeners, errOut)
	}
	for _, url := range []string{fmt.Sprintf("http://[::1]:%d/", v6), fmt.Sprintf("http://[::1]:%d/", wild)} {
		get200(t, url, "after the overlap")
	}
}
