package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/safe-restart/safe-restart/internal/apachetest"
	"github.com/safe-restart/safe-restart/internal/fpmtest"
	"github.com/safe-restart/safe-restart/internal/nstest"
	"github.com/safe-restart/safe-restart/internal/proctest"
	"github.com/safe-restart/safe-restart/internal/srvtest"
	"github.com/safe-restart/safe-restart/supervise/trial"
)

// TestTrialRefusesWhatCannotRun: changes that pass `apache2 -t` (or, for
// a missing certificate, do not) but cannot start are refused by every
// command that would touch the running master: safe-restart SERVICE,
// reload, restart and --full each exit 3, the same master serves plain
// HTTP and TLS, the report quotes the server's own line naming the cause,
// and neither the real error log, the pidfile nor the semaphore sets
// change. A harmless change still reloads, exit 0.
func TestTrialRefusesWhatCannotRun(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := apachetest.Start(t, apachetest.Config{MPM: "event", SSL: true, SysvSem: true})
	master, err := proctest.Identify(srv.MasterPID())
	if err != nil {
		t.Fatal(err)
	}
	taken, err := net.Listen("tcp", srvtest.FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cases := []struct {
		name   string
		change func(t *testing.T) // undone by restoring the server's files
		want   string             // in the report
	}{
		{"mismatched key", func(t *testing.T) { writeKey(t, filepath.Join(srv.Dir, "tls", "key.pem")) }, "AH02565"},
		{"corrupt certificate", func(t *testing.T) { write(t, filepath.Join(srv.Dir, "tls", "cert.pem"), "not a certificate\n") }, "AH02562"},
		{"module failing in post_config", func(t *testing.T) {
			appendConf(t, srv, fmt.Sprintf("Listen %s\n<VirtualHost %[1]s>\n    SSLEngine on\n</VirtualHost>", srvtest.FreeAddr(t)))
		}, "AH02312"},
		{"taken port", func(t *testing.T) { appendConf(t, srv, "Listen "+taken.Addr().String()) },
			fmt.Sprintf("%s is held by pid %d", taken.Addr(), os.Getpid())},
		{"missing certificate", func(t *testing.T) {
			conf := readFile(t, srv.ConfPath)
			write(t, srv.ConfPath, strings.Replace(conf, "tls/cert.pem", "tls/renewed.pem", 1))
		}, "does not exist or is empty"},
	}
	commands := [][]string{{"apache2"}, {"reload", "apache2"}, {"restart", "apache2"}, {"apache2", "--full"}}
	state := t.TempDir()
	saved := saveFiles(t, srv.ConfPath, filepath.Join(srv.Dir, "tls", "key.pem"), filepath.Join(srv.Dir, "tls", "cert.pem"))
	sets := len(semIDs(t))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer saved.restore(t)
			tc.change(t)
			logBefore, pidBefore := srv.ErrorLogText(), readFile(t, srv.PidFile)
			for _, args := range commands {
				args = append(args, "--conf", srv.ConfPath, "--state-dir", state, "--graceful-timeout", "0")
				code, out, errOut := runCLI(t, args...)
				if code != exitRefused || !strings.Contains(errOut, tc.want) {
					t.Fatalf("%v: exit %d, want %d naming %q\n%s\n%s", args, code, exitRefused, tc.want, out, errOut)
				}
				if !master.Alive() || srv.MasterPID() != master.PID {
					t.Fatalf("%v: the master was touched (alive %v, pidfile %d)", args, master.Alive(), srv.MasterPID())
				}
			}
			// The real server logs its own connections (LogLevel info): only
			// what a start writes would be the trial's.
			added := strings.TrimPrefix(srv.ErrorLogText(), logBefore)
			for _, mark := range []string{":emerg]", "AH00016", "AH00072", "resuming normal operations"} {
				if strings.Contains(added, mark) {
					t.Errorf("the trials wrote to the real error log:\n%s", added)
				}
			}
			if c, _, err := srv.Get("/"); err != nil || c != 200 {
				t.Fatalf("GET after the refusals: %d, %v", c, err)
			}
			if c, _, err := srv.GetTLS("/"); err != nil || c != 200 {
				t.Fatalf("TLS GET after the refusals: %d, %v", c, err)
			}
			if pid := readFile(t, srv.PidFile); pid != pidBefore {
				t.Errorf("pidfile %q, was %q", pid, pidBefore)
			}
			if n := countMasters(t, srv); n != 1 {
				t.Errorf("%d masters of apache2, want 1: a trial's processes outlived it", n)
			}
			if n := len(semIDs(t)); n != sets {
				t.Errorf("%d semaphore sets, want %d: the trial's IPC leaked into this namespace", n, sets)
			}
		})
	}
	// A harmless change reloads, though a log the server appends to (not
	// named like a log, so copied whole into the trial) holds an old
	// emerg line, and the access log a request naming ":emerg]".
	old := filepath.Join(srv.Dir, "sites", "a", "site-errors")
	if err := os.MkdirAll(filepath.Dir(old), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, old, "[Sun Dec 07 10:00:00.000000 2025] [ssl:emerg] [pid 1:tid 1] AH02565: last year's mismatch\n")
	if c, _, err := srv.Get("/x:emerg]"); err != nil || c != 404 {
		t.Fatalf("GET /x:emerg]: %d, %v", c, err)
	}
	appendConf(t, srv, "ServerSignature Off\nCustomLog \""+old+"\" apachetest")
	code, out, errOut := runCLI(t, "apache2", "--conf", srv.ConfPath, "--state-dir", state, "--json")
	var rep struct{ Trial *struct{ Ran bool } }
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != exitOK || !master.Alive() || rep.Trial == nil || !rep.Trial.Ran {
		t.Fatalf("harmless change: exit %d (master alive %v, report %v)\n%s\n%s", code, master.Alive(), err, out, errOut)
	}
}

// TestStartFailureSaysWhyAtOnce: a start whose starter exits 1 is
// reported at once (not after --timeout) with the server's own line, here
// from the virtual host's error log; and with --no-trial, a reload that
// dies of the same change is followed by a recovery start that fails the
// same way and says so in one message (exit 1: the server is down).
func TestStartFailureSaysWhyAtOnce(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := apachetest.Start(t, apachetest.Config{MPM: "event", SSL: true})
	conf := readFile(t, srv.ConfPath)
	vhostLog := filepath.Join(srv.Dir, "ssl-error.log")
	write(t, srv.ConfPath, strings.Replace(conf, "SSLEngine on", "SSLEngine on\n    ErrorLog \""+vhostLog+"\"", 1))
	state := t.TempDir()
	writeKey(t, filepath.Join(srv.Dir, "tls", "key.pem"))
	master := srv.Master()
	code, out, errOut := runCLI(t, "reload", "apache2", "--conf", srv.ConfPath, "--state-dir", state, "--no-trial", "--timeout", "5m")
	if code != exitFailed || master.Alive() {
		t.Fatalf("reload --no-trial with a mismatched key: exit %d (master alive %v)\n%s\n%s", code, master.Alive(), out, errOut)
	}
	for _, want := range []string{"reload left the server down", "its start command failed: exit status 1", "AH02565", "the server is down"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("the report does not say %q:\n%s", want, errOut)
		}
	}
	code, out, errOut = runCLI(t, "start", "apache2", "--conf", srv.ConfPath, "--state-dir", state, "--timeout", "5m")
	if code != exitFailed || !strings.Contains(errOut, "its start command failed: exit status 1") || !strings.Contains(errOut, "AH02565") {
		t.Fatalf("start with a mismatched key: exit %d\n%s\n%s", code, out, errOut)
	}
}

// saved holds files' contents to restore.
type saved map[string]string

func saveFiles(t *testing.T, paths ...string) saved {
	s := saved{}
	for _, p := range paths {
		s[p] = readFile(t, p)
	}
	return s
}

func (s saved) restore(t *testing.T) {
	for p, content := range s {
		write(t, p, content)
	}
}

// appendConf appends lines to the server's config file.
func appendConf(t *testing.T, srv *apachetest.Server, lines string) {
	t.Helper()
	write(t, srv.ConfPath, readFile(t, srv.ConfPath)+"\n"+lines+"\n")
}

// writeKey writes a new private key to path: a renewal whose key no
// longer matches the certificate.
func writeKey(t *testing.T, path string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write(t, path, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestBindCheckRefusesTakenPortFPM: php-fpm's own test does not bind, and
// a reload (USR2: the master re-executes) onto a port another process
// holds would leave php-fpm down; the bind check refuses it, exit 3,
// naming the holder, and the same master serves.
func TestBindCheckRefusesTakenPortFPM(t *testing.T) {
	nstest.RequireBinaries(t, fpmtest.Binary)
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := fpmtest.Start(t, fpmtest.Config{})
	taken, err := net.Listen("tcp", srvtest.FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	master := srv.MasterPID()
	write(t, srv.ConfPath, strings.Replace(readFile(t, srv.ConfPath), srv.Listen, taken.Addr().String(), 1))
	state := t.TempDir()
	for _, cmd := range []string{"reload", "restart"} {
		code, out, errOut := fpmCLI(t, srv, state, cmd, fpmService)
		want := fmt.Sprintf("%s is held by pid %d", taken.Addr(), os.Getpid())
		if code != exitRefused || !strings.Contains(errOut, want) || srv.MasterPID() != master {
			t.Fatalf("%s onto a taken port: exit %d, want %d naming %q (master %d, was %d)\n%s\n%s", cmd, code, exitRefused, want, srv.MasterPID(), master, out, errOut)
		}
	}
	mustServe(t, srv, "after the refusals")
}

// TestTrialStockDebianApache: Debian's own configuration (/etc/apache2
// with mod_ssl and a TLS site enabled, envvars, /var/log/apache2,
// /run/apache2), started the way its init script starts it (apache2ctl
// start), no --conf: a harmless reload passes its trial (exit 0, same
// master), a renewed key that does not match is refused (exit 3, AH02565
// quoted, same master serving TLS). The machine's /etc/apache2, /run and
// /var/log/apache2 are covered in this test's mount namespace first.
func TestTrialStockDebianApache(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	stockApacheHost(t)
	tlsDir := "/etc/apache2/test-tls"
	if err := os.MkdirAll(tlsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := apachetest.SelfSignedPEM()
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(tlsDir, "cert.pem"), string(certPEM))
	write(t, filepath.Join(tlsDir, "key.pem"), string(keyPEM))
	for _, m := range []string{"ssl.load", "ssl.conf", "socache_shmcb.load"} {
		if err := os.Symlink("../mods-available/"+m, "/etc/apache2/mods-enabled/"+m); err != nil && !os.IsExist(err) {
			t.Fatal(err)
		}
	}
	write(t, "/etc/apache2/sites-enabled/test-ssl.conf", "<VirtualHost _default_:443>\n    DocumentRoot /var/www/html\n    SSLEngine on\n"+
		"    SSLCertificateFile "+tlsDir+"/cert.pem\n    SSLCertificateKeyFile "+tlsDir+"/key.pem\n</VirtualHost>\n")
	if out, err := exec.Command("apache2ctl", "start").CombinedOutput(); err != nil {
		t.Fatalf("apache2ctl start: %v\n%s", err, out)
	}
	pidFile := "/run/apache2/apache2.pid"
	master := waitMaster(t, pidFile)
	tlsGet := func() (int, string, error) {
		return srvtest.Fetch(&http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, "https://127.0.0.1/")
	}
	state := t.TempDir()
	code, out, errOut := runCLI(t, "apache2", "--state-dir", state, "--json")
	if code != exitOK || !master.Alive() || !strings.Contains(out, `"ran": true`) {
		t.Fatalf("stock reload: exit %d (master alive %v)\n%s\n%s", code, master.Alive(), out, errOut)
	}
	writeKey(t, filepath.Join(tlsDir, "key.pem"))
	code, out, errOut = runCLI(t, "apache2", "--state-dir", state)
	if code != exitRefused || !strings.Contains(errOut, "AH02565") || !master.Alive() || srvtest.PID(pidFile) != master.PID {
		t.Fatalf("stock reload with a mismatched key: exit %d (master alive %v)\n%s\n%s", code, master.Alive(), out, errOut)
	}
	if c, _, err := tlsGet(); err != nil || c != 200 {
		t.Fatalf("TLS GET after the refusal: %d, %v", c, err)
	}
}

// stockApacheHost covers, in this test's private mount namespace, what a
// stock Debian Apache writes: a copy of /etc/apache2 over it, and tmpfs
// over /run (with /run/lock) and /var/log/apache2.
func stockApacheHost(t *testing.T) {
	t.Helper()
	etc := filepath.Join(t.TempDir(), "apache2")
	if out, err := exec.Command("cp", "-a", "/etc/apache2", etc).CombinedOutput(); err != nil {
		t.Fatalf("copy /etc/apache2: %v\n%s", err, out)
	}
	mounts := []struct{ src, target, fstype, data string }{
		{etc, "/etc/apache2", "", ""},
		{"tmpfs", "/run", "tmpfs", "mode=0755"},
		{"tmpfs", "/var/log/apache2", "tmpfs", "mode=0750"},
	}
	for _, m := range mounts {
		flags := uintptr(0)
		if m.fstype == "" {
			flags = syscall.MS_BIND
		}
		if err := syscall.Mount(m.src, m.target, m.fstype, flags, m.data); err != nil {
			t.Fatalf("mount %s on %s: %v", m.src, m.target, err)
		}
	}
	// /var/lock is /run/lock, which a booted host's tmpfiles.d creates.
	if err := os.Mkdir("/run/lock", 0o1777); err != nil {
		t.Fatal(err)
	}
}

// waitMaster waits for the pidfile to name a live process and returns it.
func waitMaster(t *testing.T, pidFile string) proctest.Proc {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if m, err := proctest.Identify(srvtest.PID(pidFile)); err == nil && m.Alive() {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("no live master in %s", pidFile)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBindCheckRefusesMissingSocketDirFPM: php-fpm's own test passes a
// pool whose unix socket directory does not exist; its reload would
// re-execute into a master that cannot bind and leave php-fpm down. The
// check refuses it (exit 3), and the same master serves.
func TestBindCheckRefusesMissingSocketDirFPM(t *testing.T) {
	nstest.RequireBinaries(t, fpmtest.Binary)
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := fpmtest.Start(t, fpmtest.Config{Unix: true})
	master := srv.MasterPID()
	missing := filepath.Join(srv.Dir, "no-such-dir", "php.sock")
	write(t, srv.ConfPath, strings.Replace(readFile(t, srv.ConfPath), srv.Listen, missing, 1))
	if out, err := exec.Command(srv.Bin, "-t", "-y", srv.ConfPath).CombinedOutput(); err != nil {
		t.Fatalf("php-fpm -t fails on the config only a start should fail: %v\n%s", err, out)
	}
	code, out, errOut := fpmCLI(t, srv, t.TempDir(), "reload", fpmService)
	if code != exitRefused || !strings.Contains(errOut, missing) || srv.MasterPID() != master {
		t.Fatalf("reload onto a missing socket directory: exit %d, want %d naming %s (master %d, was %d)\n%s\n%s", code, exitRefused, missing, srv.MasterPID(), master, out, errOut)
	}
	mustServe(t, srv, "after the refusal")
}

// TestTrialListensOnOwnIPv6Address: a Listen on one of this machine's own
// global IPv6 addresses binds in the trial's network namespace too (which
// has only lo: the trial sets ip_nonlocal_bind), so the change reloads.
func TestTrialListensOnOwnIPv6Address(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl", "ip")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	if out, err := exec.Command("ip", "-6", "addr", "add", "2001:db8::5/128", "dev", "lo", "nodad").CombinedOutput(); err != nil {
		t.Fatalf("ip -6 addr add: %v\n%s", err, out)
	}
	srv := apachetest.Start(t, apachetest.Config{MPM: "event"})
	master := srv.Master()
	_, port, _ := net.SplitHostPort(srvtest.FreeAddr(t))
	appendConf(t, srv, "Listen [2001:db8::5]:"+port)
	code, out, errOut := runCLI(t, "apache2", "--conf", srv.ConfPath, "--state-dir", t.TempDir())
	if code != exitOK || !master.Alive() {
		t.Fatalf("reload with a Listen on this machine's IPv6 address: exit %d (master alive %v)\n%s\n%s", code, master.Alive(), out, errOut)
	}
	if c, _, err := srvtest.Get("[2001:db8::5]:"+port, "/"); err != nil || c != 200 {
		t.Fatalf("GET on the new IPv6 listener: %d, %v", c, err)
	}
}

// TestTrialKeepsMountsBelowOverlays: the trial's overlay on the error
// log's directory must not hide a mount below it (as /run/lock is below
// /run on Debian), where the mutex directory lives: the change reloads.
func TestTrialKeepsMountsBelowOverlays(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	base := srvtest.WorldReadableTempDir(t)
	lock := filepath.Join(base, "lock")
	if err := os.Mkdir(lock, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", lock, "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(lock, syscall.MNT_DETACH) })
	mutexDir := filepath.Join(lock, "apache2")
	if err := os.Mkdir(mutexDir, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(lock, "old.log"), "a log on the mount below, read-only to the trial\n")
	srv := apachetest.Start(t, apachetest.Config{Extra: fmt.Sprintf("ErrorLog %q\nMutex file:%s default", filepath.Join(base, "error.log"), mutexDir)})
	master := srv.Master()
	code, out, errOut := runCLI(t, "apache2", "--conf", srv.ConfPath, "--state-dir", t.TempDir(), "--json")
	var rep struct{ Trial *trial.Report }
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != exitOK || !master.Alive() || rep.Trial == nil || !rep.Trial.Ran {
		t.Fatalf("reload with the mutexes on a mount below the error log's directory: exit %d (master alive %v, report %v), want a trial that ran\n%s\n%s",
			code, master.Alive(), err, out, errOut)
	}
}

// TestTrialHasTheMastersFileLimit: the running master may open more files
// than this program's children get by default (Debian's apache2ctl starts
// it with ulimit -n 8192); a change that needs more than 1024 reloads, so
// its trial must have the master's limit too.
func TestTrialHasTheMastersFileLimit(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := apachetest.Start(t, apachetest.Config{MPM: "event"})
	master := srv.Master()
	if err := unix.Prlimit(master.PID, unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: 8192, Max: 8192}, nil); err != nil {
		t.Fatal(err)
	}
	// This process (safe-restart, here) and what it starts get 1024, the
	// usual default of a login shell or a systemd service.
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: 1024, Max: 1024}); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	for i := range 1100 {
		fmt.Fprintf(&logs, "CustomLog %q apachetest\n", filepath.Join(srv.Dir, "many", fmt.Sprintf("%d.log", i)))
	}
	if err := os.Mkdir(filepath.Join(srv.Dir, "many"), 0o755); err != nil {
		t.Fatal(err)
	}
	appendConf(t, srv, logs.String())
	code, out, errOut := runCLI(t, "apache2", "--conf", srv.ConfPath, "--state-dir", t.TempDir())
	if code != exitOK || !master.Alive() {
		t.Fatalf("reload opening 1100 logs under a master allowed 8192 files: exit %d (master alive %v)\n%s\n%s", code, master.Alive(), out, errOut)
	}
}

// TestRunReloadRefusesTakenPort: under safe-restart run, a HUP whose new
// php-fpm configuration listens on a port another process holds is refused
// before the reload signal (php-fpm's USR2 would re-execute into a master
// that cannot bind); the child serves on.
func TestRunReloadRefusesTakenPort(t *testing.T) {
	nstest.RequireBinaries(t, fpmtest.Binary)
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := fpmtest.Prepare(t, fpmtest.Config{})
	r := fpmRun(t, srv, "--graceful-timeout", "5s")
	master := srv.MasterPID()
	taken, err := net.Listen("tcp", srvtest.FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	write(t, srv.ConfPath, strings.Replace(readFile(t, srv.ConfPath), srv.Listen, taken.Addr().String(), 1))
	if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	ev := r.await(1, 30*time.Second, "refused reload", event("reload", "reload refused before acting"))[0]
	if !strings.Contains(ev.str("error"), taken.Addr().String()+" is held by pid") || srv.MasterPID() != master {
		t.Fatalf("refused reload: %v; master now %d, was %d", ev, srv.MasterPID(), master)
	}
	mustServe(t, srv, "after the refused reload")
}
