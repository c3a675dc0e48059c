package main

import (
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/safe-restart/safe-restart/internal/nginxtest"
	"github.com/safe-restart/safe-restart/internal/nstest"
	"github.com/safe-restart/safe-restart/internal/proctest"
	"github.com/safe-restart/safe-restart/ipcguard"
)

// nginxMaster returns the live master srv's pidfile names.
func nginxMaster(t *testing.T, srv *nginxtest.Server) proctest.Proc {
	t.Helper()
	m, err := srv.Master()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// settledWorkers waits (up to 20 s) until the master has only its two
// workers (the old generation's finish their requests and exit after a
// reload) and returns their pids, sorted.
func settledWorkers(t *testing.T, srv *nginxtest.Server) []int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		w := workerPIDs(srv)
		if len(w) == 2 {
			return w
		}
		if time.Now().After(deadline) {
			t.Fatalf("workers %v: want 2", w)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// workerPIDs returns the pids of the master's live workers, sorted.
func workerPIDs(srv *nginxtest.Server) []int {
	var out []int
	for _, w := range srv.Workers() {
		out = append(out, w.PID)
	}
	slices.Sort(out)
	return out
}

func allExited(procs []ipcguard.Proc) bool {
	for _, p := range procs {
		if proctest.Of(p).Alive() {
			return false
		}
	}
	return true
}

// TestNginxLifecycle: status names the master and both listeners; stop
// (QUIT) leaves no nginx process, no pidfile and no socket file; start and
// restart leave a new master whose pidfile, listeners and GET / check out.
func TestNginxLifecycle(t *testing.T) {
	nstest.RequireBinaries(t, "nginx")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := nginxtest.Start(t, nginxtest.Options{UnixSocket: true})
	conf := []string{"--conf", srv.ConfPath, "--state-dir", t.TempDir()}
	code, out, errOut := runCLI(t, append([]string{"status", "nginx"}, conf...)...)
	if code != exitOK || !strings.Contains(out, "running, master "+strconv.Itoa(srv.MasterPID())) ||
		!strings.Contains(out, srv.Addr) || !strings.Contains(out, srv.Socket) || !strings.Contains(out, "risks: none found") {
		t.Fatalf("status: exit %d\n%s\n%s", code, out, errOut)
	}
	old := srv.Processes()
	code, out, errOut = runCLI(t, append([]string{"stop", "nginx"}, conf...)...)
	if code != exitOK || !strings.Contains(out, "stopped nginx: master") || !allExited(old) {
		t.Fatalf("stop: exit %d (all exited %v)\n%s\n%s", code, allExited(old), out, errOut)
	}
	for _, f := range []string{srv.PidFile, srv.Socket} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("%s left after a clean stop", f)
		}
	}
	if !strings.Contains(errOut, `"signal":"SIGQUIT"`) {
		t.Errorf("the stop did not begin with QUIT:\n%s", errOut)
	}
	code, out, errOut = runCLI(t, append([]string{"start", "nginx"}, conf...)...)
	if code != exitOK {
		t.Fatalf("start: exit %d\n%s\n%s", code, out, errOut)
	}
	first := nginxMaster(t, srv)
	if !strings.Contains(out, "started nginx: master "+strconv.Itoa(first.PID)) ||
		!strings.Contains(out, srv.Addr) || !strings.Contains(out, srv.Socket) {
		t.Fatalf("start: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, append([]string{"restart", "nginx"}, conf...)...)
	if code != exitOK {
		t.Fatalf("restart: exit %d\n%s\n%s", code, out, errOut)
	}
	second := nginxMaster(t, srv)
	if first.Alive() || second == first || !strings.Contains(out, "started nginx: master "+strconv.Itoa(second.PID)) {
		t.Fatalf("restart: exit %d (old master alive %v)\n%s\n%s", code, first.Alive(), out, errOut)
	}
	if c, body, err := srv.Get("/"); c != 200 || body != nginxtest.IndexBody || err != nil {
		t.Fatalf("GET / after the restart: %d %q %v", c, body, err)
	}
	if c, _, err := srv.GetUnix("/"); c != 200 || err != nil {
		t.Fatalf("GET / on the unix socket after the restart: %d %v", c, err)
	}
}

// TestNginxReload: a verified reload keeps the master and replaces its
// workers; five reloads under a client's load fail no request; a config
// that fails the config test exits 3 with nothing touched; one that passes
// it but that nginx rejects on HUP (a listen address another process holds)
// is reported, with the old generation serving, neither stopped nor
// restarted.
func TestNginxReload(t *testing.T) {
	nstest.RequireBinaries(t, "nginx")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := nginxtest.Start(t, nginxtest.Options{})
	conf := []string{"--conf", srv.ConfPath, "--state-dir", t.TempDir()}
	master := nginxMaster(t, srv)
	before := workerPIDs(srv)
	code, out, errOut := runCLI(t, append([]string{"reload", "nginx"}, conf...)...)
	if code != exitOK || !strings.Contains(out, "reloaded nginx: master "+strconv.Itoa(master.PID)+" (SIGHUP)") {
		t.Fatalf("reload: exit %d\n%s\n%s", code, out, errOut)
	}
	after := settledWorkers(t, srv)
	if !master.Alive() || slices.ContainsFunc(after, func(p int) bool { return slices.Contains(before, p) }) {
		t.Fatalf("after the reload: master alive %v, workers %v, before %v: want the same master, two new workers", master.Alive(), after, before)
	}

	stop := clientLoad(t, srv.Get)
	for i := 0; i < 5; i++ {
		if code, out, errOut := runCLI(t, append([]string{"nginx"}, conf...)...); code != exitOK {
			t.Fatalf("reload %d under load: exit %d\n%s\n%s", i+1, code, out, errOut)
		}
	}
	ok, failed := stop()
	if ok == 0 || failed != 0 {
		t.Fatalf("during 5 reloads: %d requests served, %d failed; want none failed", ok, failed)
	}
	t.Logf("during 5 reloads: %d requests served, none failed", ok)

	good, err := os.ReadFile(srv.ConfPath)
	if err != nil {
		t.Fatal(err)
	}
	before = settledWorkers(t, srv)
	writeConf(t, srv.ConfPath, string(good)+"\nbogus_directive on;\n")
	code, _, errOut = runCLI(t, append([]string{"nginx"}, conf...)...)
	if code != exitRefused || !master.Alive() || !slices.Equal(workerPIDs(srv), before) || !strings.Contains(errOut, "bogus_directive") {
		t.Fatalf("bad config: exit %d (master alive %v, workers %v, before %v)\n%s", code, master.Alive(), workerPIDs(srv), before, errOut)
	}

	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	listen := "listen " + srv.Addr + ";"
	writeConf(t, srv.ConfPath, strings.Replace(string(good), listen, listen+"\n        listen "+held.Addr().String()+";", 1))
	if out, err := exec.Command(srv.Bin, "-t", "-c", srv.ConfPath).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t fails on the config that only the HUP should reject: %v\n%s", err, out)
	}
	// The bind check refuses it before acting, naming the holder ...
	code, out, errOut = runCLI(t, append([]string{"nginx"}, conf...)...)
	if want := held.Addr().String() + " is held by pid"; code != exitRefused || !strings.Contains(errOut, want) {
		t.Fatalf("reload onto a taken port: exit %d, want %d naming %q\n%s\n%s", code, exitRefused, want, out, errOut)
	}
	// ... and without it, nginx rejects the HUP and keeps the old
	// configuration.
	code, out, errOut = runCLI(t, append([]string{"nginx", "--no-trial"}, conf...)...)
	if code != exitFailed || !strings.Contains(errOut, "rejected the new configuration") || !strings.Contains(errOut, "still could not bind()") {
		t.Fatalf("config rejected by the HUP: exit %d, want %d reporting the rejection (no restart)\n%s\n%s", code, exitFailed, out, errOut)
	}
	if !master.Alive() || srv.MasterPID() != master.PID || !slices.Equal(workerPIDs(srv), before) || len(srv.Processes()) != 3 {
		t.Fatalf("after the rejected reload: master alive %v (pidfile %d), workers %v, before %v, %d nginx processes: want the old generation untouched",
			master.Alive(), srv.MasterPID(), workerPIDs(srv), before, len(srv.Processes()))
	}
	if c, _, err := srv.Get("/"); c != 200 || err != nil {
		t.Fatalf("GET / after the rejected reload: %d %v", c, err)
	}
}

func writeConf(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestNginxStartAfterKill9: after kill -9 of the master its workers keep
// the port (status reports them), nginx's own start fails, and the unix
// socket file stays behind; safe-restart start stops the orphans, removes
// the stale pidfile and socket, starts and verifies.
func TestNginxStartAfterKill9(t *testing.T) {
	nstest.RequireBinaries(t, "nginx")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := nginxtest.Start(t, nginxtest.Options{UnixSocket: true})
	conf := []string{"--conf", srv.ConfPath, "--state-dir", t.TempDir()}
	old := nginxMaster(t, srv)
	orphans := srv.Workers()
	srv.KillMaster9()
	code, out, _ := runCLI(t, append([]string{"status", "nginx"}, conf...)...)
	for _, w := range orphans {
		if !strings.Contains(out, strconv.Itoa(w.PID)) {
			t.Errorf("status does not name orphan %d", w.PID)
		}
	}
	if code != exitFailed || !strings.Contains(out, "orphaned workers of a dead master") {
		t.Fatalf("status with orphans: exit %d\n%s", code, out)
	}
	if out, err := exec.Command(srv.Bin, "-c", srv.ConfPath).CombinedOutput(); err == nil || !strings.Contains(string(out), "Address already in use") {
		t.Fatalf("nginx's own start beside the orphans: %v\n%s; want bind() ... Address already in use", err, out)
	}
	if _, err := os.Stat(srv.Socket); err != nil {
		t.Fatalf("the killed master's socket file: %v", err)
	}
	code, out, errOut := runCLI(t, append([]string{"start", "nginx"}, conf...)...)
	if code != exitOK || !strings.Contains(out, "stopped 2 orphaned worker(s)") || !strings.Contains(errOut, "removing a stale pidfile") ||
		!strings.Contains(errOut, "removed a stale unix socket") {
		t.Fatalf("start: exit %d\n%s\n%s", code, out, errOut)
	}
	if !allExited(orphans) {
		t.Errorf("orphans %v still alive", orphans)
	}
	if m := nginxMaster(t, srv); m == old || !m.Alive() {
		t.Errorf("master %v after the start, old %v", m, old)
	}
	if c, _, err := srv.Get("/"); c != 200 || err != nil {
		t.Fatalf("GET / after the start: %d %v", c, err)
	}
	if c, _, err := srv.GetUnix("/"); c != 200 || err != nil {
		t.Fatalf("GET / on the unix socket after the start: %d %v", c, err)
	}
}

// TestNginxLogrotateExample runs examples/logrotate/nginx, pointed at a
// test server, with the real logrotate -f: the log is rotated, the
// postrotate reload is verified (same master), and no nginx process holds
// the rotated log afterwards.
func TestNginxLogrotateExample(t *testing.T) {
	nstest.RequireBinaries(t, "nginx", "logrotate")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	// notice: a healthy nginx logs nothing at its default level, and
	// logrotate does not rotate an empty log (notifempty).
	srv := nginxtest.Start(t, nginxtest.Options{ErrorLogLevel: "notice"})
	master := nginxMaster(t, srv)
	log := runLogrotateExample(t, "nginx", srv.ErrorLog, "/usr/bin/safe-restart nginx", "nginx --conf "+srv.ConfPath,
		"create 0640 www-data adm", "create 0640 www-data root")
	if !strings.Contains(log, "reloaded and verified") || !strings.Contains(log, "rotated logs released") ||
		!master.Alive() || srv.MasterPID() != master.PID {
		t.Fatalf("postrotate did not reload the same master, verified:\n%s", log)
	}
	if !strings.Contains(srv.ErrorLogText(), strconv.Itoa(master.PID)+"#"+strconv.Itoa(master.PID)+": start worker processes") {
		t.Errorf("the master does not write to the new log:\n%s", srv.ErrorLogText())
	}
	if c, _, err := srv.Get("/"); c != 200 || err != nil {
		t.Fatalf("GET / after logrotate: %d %v", c, err)
	}
}

// TestNginxReloadUnhealthyBefore: a server whose health check already
// fails before the reload (its PHP backend is down: 502) is reloaded, and
// the failure after it is reported (exit 1), not blamed on the reload: the
// master lives, so it is not restarted.
func TestNginxReloadUnhealthyBefore(t *testing.T) {
	nstest.RequireBinaries(t, "nginx")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := nginxtest.Start(t, nginxtest.Options{FastCGIPass: "127.0.0.1:1"}) // nothing listens: 502
	master := nginxMaster(t, srv)
	health := "http://" + srv.Addr + "/down.php"
	if c, _, err := srv.Get("/down.php"); err != nil || c != 502 {
		t.Fatalf("GET /down.php: %d, %v; want 502", c, err)
	}
	code, out, errOut := runCLI(t, "reload", "nginx", "--conf", srv.ConfPath, "--state-dir", t.TempDir(), "--health-url", health, "--timeout", "3s")
	if code != exitFailed || !strings.Contains(errOut, "did not serve before the reload either") {
		t.Fatalf("reload of an unhealthy nginx: exit %d, want %d naming the earlier failure\n%s\n%s", code, exitFailed, out, errOut)
	}
	if !master.Alive() || srv.MasterPID() != master.PID {
		t.Fatalf("the master was replaced (pidfile names %d, was %d)", srv.MasterPID(), master.PID)
	}
	if c, _, err := srv.Get("/"); err != nil || c != 200 {
		t.Fatalf("GET / after the reload: %d, %v", c, err)
	}
}
