package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/safe-restart/safe-restart/internal/apachetest"
	"github.com/safe-restart/safe-restart/internal/nginxtest"
	"github.com/safe-restart/safe-restart/internal/nstest"
	"github.com/safe-restart/safe-restart/internal/srvtest"
	"github.com/safe-restart/safe-restart/supervise"
	"github.com/safe-restart/safe-restart/supervise/generation"
)

// writeCert writes a new self-signed certificate for name, issued age ago
// and valid for valid from now, and its key to cert and key, each through a
// file renamed over the old (as certbot's deploy does), and returns the
// certificate's expiry.
func writeCert(t *testing.T, cert, key, name string, age, valid time.Duration) time.Time {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-age), NotAfter: time.Now().Add(valid).Truncate(time.Second)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	writeRenamed(t, cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeRenamed(t, key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
	return tmpl.NotAfter
}

// writeRenamed writes data to a new file renamed over path.
func writeRenamed(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path+".new", data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
}

// driftStatus is what status --json says of the serving generation.
type driftStatus struct {
	Generation *generation.Report `json:"generation"`
	Risks      []string           `json:"risks"`
}

// servingOf runs status --json and returns its generation report.
func servingOf(t *testing.T, args ...string) driftStatus {
	t.Helper()
	code, out, errOut := runCLI(t, append([]string{"status", "--json"}, args...)...)
	var st driftStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil || code != exitOK || st.Generation == nil {
		t.Fatalf("status: exit %d, %v\n%s\n%s", code, err, out, errOut)
	}
	return st
}

// doctorChecks runs doctor --json and returns the checks it found.
func doctorChecks(t *testing.T, args ...string) []string {
	t.Helper()
	code, out, errOut := runCLI(t, append([]string{"doctor", "--json"}, args...)...)
	var rep struct {
		Findings []struct {
			Check string `json:"check"`
		} `json:"findings"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("doctor: exit %d, %v\n%s\n%s", code, err, out, errOut)
	}
	var checks []string
	for _, f := range rep.Findings {
		checks = append(checks, f.Check)
	}
	return checks
}

// TestNginxDrift: a real nginx with a TLS listener. status, doctor and
// metrics report nothing drifted while it serves what is on disk; a
// renewed certificate (renamed in, as certbot does) is reported as not
// served, with its files changed since the generation loaded, until a
// reload, and not after; an edited include is reported until a reload;
// a worker of the old generation held by a slow client is listed with its
// connection, and gone once the client is.
func TestNginxDrift(t *testing.T) {
	nstest.RequireBinaries(t, "nginx", "promtool")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	dir := srvtest.WorldReadableTempDir(t)
	cert, key, include := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "extra.conf")
	firstExpiry := writeCert(t, cert, key, "drift.test", 30*24*time.Hour, 60*24*time.Hour)
	writeRenamed(t, include, []byte("# nothing yet\n"))
	tlsAddr := srvtest.FreeAddr(t)
	srv := nginxtest.Start(t, nginxtest.Options{HTTPExtra: fmt.Sprintf(`server {
        listen %s ssl;
        server_name drift.test;
        ssl_certificate %s;
        ssl_certificate_key %s;
        send_timeout 120s;
    }
    include %s;`, tlsAddr, cert, key, include)})
	big := filepath.Join(srv.Dir, "html", "big")
	if err := os.WriteFile(big, make([]byte, 64<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	args := []string{"nginx", "--conf", srv.ConfPath, "--state-dir", state}
	served := func(st driftStatus) generation.Served {
		t.Helper()
		for _, s := range st.Generation.TLS {
			if s.Listener == tlsAddr && s.ServerName == "drift.test" || s.Listener == tlsAddr && len(st.Generation.TLS) == 1 {
				return s
			}
		}
		t.Fatalf("no certificate served on %s: %+v", tlsAddr, st.Generation.TLS)
		return generation.Served{}
	}

	st := servingOf(t, args...)
	if s := served(st); s.File != cert || s.NotServed != "" || !s.NotAfter.Equal(firstExpiry) || len(st.Generation.Changed) != 0 || st.Generation.Replaced.Any() || len(st.Risks) != 0 {
		t.Fatalf("before any change: %+v, risks %q", st.Generation, st.Risks)
	}
	m := metricsOf(t, exitOK, args...)
	wantMetric(t, m, "safe_restart_tls_certificates_not_served{service=nginx}", 0)
	wantMetric(t, m, "safe_restart_config_files_changed{service=nginx}", 0)
	wantMetric(t, m, "safe_restart_binary_replaced{service=nginx}", 0)
	wantMetric(t, m, fmt.Sprintf("safe_restart_tls_certificate_expiry_timestamp_seconds{listener=%s,server_name=,service=nginx}", tlsAddr), float64(firstExpiry.Unix()))

	// The renewal: new files, the old certificate still served.
	renewed := writeCert(t, cert, key, "drift.test", time.Hour, 90*24*time.Hour)
	st = servingOf(t, args...)
	changed := func(st driftStatus) []string {
		var out []string
		for _, f := range st.Generation.Changed {
			out = append(out, f.Path)
		}
		slices.Sort(out)
		return out
	}
	if s := served(st); s.NotServed != cert || s.File != "" || !s.NotAfter.Equal(firstExpiry) || !slices.Equal(changed(st), []string{cert, key}) ||
		!slices.ContainsFunc(st.Risks, func(r string) bool { return strings.Contains(r, "a renewal not served (safe-restart reload nginx)") }) {
		t.Fatalf("after the renewal: %+v, risks %q", st.Generation, st.Risks)
	}
	m = metricsOf(t, exitOK, args...)
	wantMetric(t, m, "safe_restart_tls_certificates_not_served{service=nginx}", 1)
	wantMetric(t, m, "safe_restart_config_files_changed{service=nginx}", 2)
	if checks := doctorChecks(t, args...); !slices.Contains(checks, "tls-not-served") || !slices.Contains(checks, "config-drift") {
		t.Fatalf("doctor after the renewal: %q", checks)
	}

	// A slow client holds a worker; the reload serves the renewal.
	slow := slowClient(t, srv.Addr)
	if code, out, errOut := runCLI(t, append([]string{"reload"}, args...)...); code != exitOK {
		t.Fatalf("reload: exit %d\n%s\n%s", code, out, errOut)
	}
	// The old workers take the master's word in their own time: until they
	// do, they still accept, and serve the old certificate.
	deadline := time.Now().Add(20 * time.Second)
	for st = servingOf(t, args...); len(st.Generation.Old) != 1; st = servingOf(t, args...) {
		if time.Now().After(deadline) {
			t.Fatalf("old generation with the slow client: %+v", st.Generation.Old)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if s := served(st); s.File != cert || s.NotServed != "" || !s.NotAfter.Equal(renewed) || len(st.Generation.Changed) != 0 {
		t.Fatalf("after the reload: %+v, risks %q", st.Generation, st.Risks)
	}
	if st.Generation.Old[0].Connections != 1 || st.Generation.DrainingSince().IsZero() || st.Generation.LoadedFrom != "workers" ||
		!slices.ContainsFunc(st.Risks, func(r string) bool { return strings.Contains(r, "1 process(es) of an older generation still run") }) {
		t.Fatalf("old generation with the slow client: %+v, risks %q", st.Generation, st.Risks)
	}
	oldPID := st.Generation.Old[0].PID
	m = metricsOf(t, exitOK, args...)
	wantMetric(t, m, "safe_restart_old_generation_processes{service=nginx}", 1)
	if _, ok := m["safe_restart_old_generation_draining_since_timestamp_seconds{service=nginx}"]; !ok {
		t.Error("no draining-since metric while an old worker drains")
	}
	slow.Close()
	deadline = time.Now().Add(20 * time.Second)
	for len(servingOf(t, args...).Generation.Old) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("old worker %d still listed after its client left", oldPID)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// An edited include, reported until a reload.
	writeRenamed(t, include, []byte("# edited\n"))
	if st = servingOf(t, args...); !slices.Equal(changed(st), []string{include}) {
		t.Fatalf("after the edit: changed %q", changed(st))
	}
	if code, out, errOut := runCLI(t, append([]string{"reload"}, args...)...); code != exitOK {
		t.Fatalf("reload: exit %d\n%s\n%s", code, out, errOut)
	}
	if st = servingOf(t, args...); len(st.Generation.Changed) != 0 || len(st.Risks) != 0 {
		t.Fatalf("after the second reload: %+v, risks %q", st.Generation, st.Risks)
	}
}

// slowClient asks addr for /big and reads only its first bytes, so the
// worker that serves it waits to send the rest.
func slowClient(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, "GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestNginxBinaryDrift: nginx upgraded under a running master (a new
// build renamed over /usr/sbin/nginx, as dpkg does; in an overlay of
// /usr/sbin private to the test) is reported by status, metrics and doctor,
// which names a restart; after `safe-restart restart` it is not.
func TestNginxBinaryDrift(t *testing.T) {
	nstest.RequireBinaries(t, "nginx", "promtool")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	overlayUsrSbin(t)
	srv := nginxtest.Start(t, nginxtest.Options{})
	args := []string{"nginx", "--conf", srv.ConfPath, "--state-dir", t.TempDir()}
	if st := servingOf(t, args...); st.Generation.Replaced.Any() {
		t.Fatalf("before the upgrade: %+v", st.Generation.Replaced)
	}
	data, err := os.ReadFile("/usr/sbin/nginx")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("/usr/sbin/nginx.dpkg-new", data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename("/usr/sbin/nginx.dpkg-new", "/usr/sbin/nginx"); err != nil {
		t.Fatal(err)
	}
	st := servingOf(t, args...)
	if st.Generation.Replaced.Exe != "/usr/sbin/nginx" ||
		!slices.ContainsFunc(st.Risks, func(r string) bool { return strings.Contains(r, "(safe-restart restart nginx)") }) {
		t.Fatalf("after the upgrade: %+v, risks %q", st.Generation.Replaced, st.Risks)
	}
	wantMetric(t, metricsOf(t, exitOK, args...), "safe_restart_binary_replaced{service=nginx}", 1)
	if checks := doctorChecks(t, args...); !slices.Contains(checks, "code-drift") {
		t.Fatalf("doctor after the upgrade: %q", checks)
	}
	if code, out, errOut := runCLI(t, append([]string{"restart"}, args...)...); code != exitOK {
		t.Fatalf("restart: exit %d\n%s\n%s", code, out, errOut)
	}
	if st := servingOf(t, args...); st.Generation.Replaced.Any() || len(st.Risks) != 0 {
		t.Fatalf("after the restart: %+v, risks %q", st.Generation.Replaced, st.Risks)
	}
}

// overlayUsrSbin mounts an overlay on /usr/sbin whose upper layer is a
// tmpfs of the test's own mount namespace: what the test writes there
// never reaches the machine's /usr/sbin. It is unmounted at cleanup,
// after the servers started later have stopped.
func overlayUsrSbin(t *testing.T) {
	t.Helper()
	base := t.TempDir()
	if err := unix.Mount("tmpfs", base, "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatal(err)
	}
	up, work := filepath.Join(base, "up"), filepath.Join(base, "work")
	for _, d := range []string{up, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mount("overlay", "/usr/sbin", "overlay", 0, "lowerdir=/usr/sbin,upperdir="+up+",workdir="+work); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = unix.Unmount("/usr/sbin", unix.MNT_DETACH)
		_ = unix.Unmount(base, unix.MNT_DETACH)
	})
}

// TestNginxDrainTimeout: after a verified reload, an old worker held by a
// slow download is given --drain-timeout and then ended by TERM (the
// download is cut short, the worker gone); without the flag the reload
// does not wait for it, the report naming nginx's own
// worker_shutdown_timeout, which nginx enforces itself (nginx cuts the
// download).
func TestNginxDrainTimeout(t *testing.T) {
	nstest.RequireBinaries(t, "nginx")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := nginxtest.Start(t, nginxtest.Options{MainExtra: "worker_shutdown_timeout 400ms;", HTTPExtra: "send_timeout 120s;"})
	if err := os.WriteFile(filepath.Join(srv.Dir, "html", "big"), make([]byte, 64<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"nginx", "--conf", srv.ConfPath, "--state-dir", t.TempDir(), "--json"}
	reload := func(flags ...string) supervise.DrainReport {
		t.Helper()
		code, out, errOut := runCLI(t, append(append([]string{"reload"}, args...), flags...)...)
		var rep supervise.ReloadReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil || code != exitOK || rep.Drain == nil {
			t.Fatalf("reload %v: exit %d, %v\n%s\n%s", flags, code, err, out, errOut)
		}
		return *rep.Drain
	}
	cut := func(c net.Conn) {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		n, err := io.Copy(io.Discard, c)
		if err != nil && !errors.Is(err, syscall.ECONNRESET) || n >= 64<<20 {
			t.Fatalf("the slow download was not cut: %d more bytes, %v", n, err)
		}
	}

	// Old lists every old worker alive at the verification: the idle one
	// may not have exited yet; the slow download's outlives the bound.
	slow := slowClient(t, srv.Addr)
	dr := reload("--drain-timeout", "200ms")
	if len(dr.Old) == 0 || dr.BoundBy != "--drain-timeout" || dr.Bound != 200*time.Millisecond || len(dr.Ended) == 0 ||
		dr.Ended[0].Step.Signal != syscall.SIGTERM || len(dr.Ended[0].Sent) == 0 || len(dr.Left) != 0 {
		t.Fatalf("--drain-timeout 200ms: %+v", dr)
	}
	for _, pid := range dr.Ended[0].Sent {
		if !slices.Contains(dr.Old, pid) {
			t.Fatalf("TERM sent to %d, not of the older generation %v", pid, dr.Old)
		}
	}
	cut(slow)

	slow = slowClient(t, srv.Addr)
	dr = reload()
	if len(dr.Old) == 0 || dr.BoundBy != "nginx worker_shutdown_timeout" || dr.Bound != 400*time.Millisecond || len(dr.Ended) != 0 || !slices.Equal(dr.Left, dr.Old) {
		t.Fatalf("no --drain-timeout: %+v", dr)
	}
	cut(slow)
}

// TestApacheDrift: a real Apache (prefork, TLS) whose error log dates its
// generation: a renewed certificate is reported as not served until a
// graceful reload; a child of the older generation busy with a slow
// download after that reload is listed (started before the generation's
// load line) with its connection, and gone once the client is (the reload
// did not wait for it: Apache's GracefulShutdownTimeout bounds stops, not
// this); a reload with --drain-timeout ends such a child with TERM.
func TestApacheDrift(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := apachetest.Start(t, apachetest.Config{MPM: "prefork", SSL: true})
	if err := os.WriteFile(filepath.Join(srv.Dir, "htdocs", "big"), make([]byte, 64<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	cert, key := filepath.Join(srv.Dir, "tls", "cert.pem"), filepath.Join(srv.Dir, "tls", "key.pem")
	args := []string{"apache2", "--conf", srv.ConfPath, "--state-dir", t.TempDir()}
	tlsOn := func(st driftStatus) generation.Served {
		t.Helper()
		for _, s := range st.Generation.TLS {
			if s.Listener == srv.SSLAddr && s.ServerName == "" {
				return s
			}
		}
		t.Fatalf("no certificate served on %s: %+v", srv.SSLAddr, st.Generation.TLS)
		return generation.Served{}
	}
	st := servingOf(t, args...)
	if s := tlsOn(st); s.File != cert || s.NotServed != "" || st.Generation.LoadedFrom != "error log" || len(st.Generation.Changed) != 0 || len(st.Generation.Old) != 0 {
		t.Fatalf("before the renewal: %+v", st.Generation)
	}
	renewed := writeCert(t, cert, key, "localhost", 0, 90*24*time.Hour)
	if s := tlsOn(servingOf(t, args...)); s.NotServed != cert || s.File != "" {
		t.Fatalf("after the renewal: %+v", s)
	}

	// Not waited for (the default): apachetest's GracefulShutdownTimeout 5
	// bounds a graceful stop, not this.
	slow := slowClient(t, srv.Listen[0])
	if code, out, errOut := runCLI(t, append([]string{"reload"}, args...)...); code != exitOK {
		t.Fatalf("reload: exit %d\n%s\n%s", code, out, errOut)
	}
	st = servingOf(t, args...)
	if s := tlsOn(st); s.File != cert || !s.NotAfter.Equal(renewed) || len(st.Generation.Changed) != 0 || st.Generation.LoadedFrom != "error log" {
		t.Fatalf("after the reload: %+v", st.Generation)
	}
	// Idle old children may not have exited yet: the busy one is listed
	// with its connection.
	if !slices.ContainsFunc(st.Generation.Old, func(o generation.OldProc) bool { return o.Connections == 1 }) {
		t.Fatalf("the older generation's busy child: %+v", st.Generation.Old)
	}
	slow.Close()
	deadline := time.Now().Add(20 * time.Second)
	for len(servingOf(t, args...).Generation.Old) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the older generation's child still listed after its client left")
		}
		time.Sleep(50 * time.Millisecond)
	}

	slowClient(t, srv.Listen[0])
	code, out, errOut := runCLI(t, append([]string{"reload", "--json", "--drain-timeout", "300ms"}, args...)...)
	var rep supervise.ReloadReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != exitOK || rep.Drain == nil {
		t.Fatalf("reload: exit %d, %v\n%s\n%s", code, err, out, errOut)
	}
	if dr := rep.Drain; dr.Bound != 300*time.Millisecond || len(dr.Ended) == 0 || len(dr.Ended[0].Sent) == 0 || len(dr.Left) != 0 {
		t.Fatalf("--drain-timeout 300ms: %+v", dr)
	}
}
