//go:build linux

package apachetest

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/safe-restart/safe-restart/internal/nstest"
	"github.com/safe-restart/safe-restart/internal/proctest"
	"github.com/safe-restart/safe-restart/internal/srvtest"
	"github.com/safe-restart/safe-restart/ipcguard"
)

// ModDir is where Debian installs Apache's modules.
const ModDir = "/usr/lib/apache2/modules"

// EnvToken is the environment variable whose unique value marks every
// process of one Server (starter, master, children): Apache keeps the
// environment it was started with, so /proc/PID/environ identifies them.
const EnvToken = "APACHETEST_TOKEN"

// Digest credentials of the /digest/ location when Config.AuthDigest is set.
const (
	DigestUser     = "test"
	DigestPassword = "test"
	DigestRealm    = "apachetest"
)

// Config selects what Start puts into httpd.conf. The zero value is a
// prefork server with two plain-HTTP listeners.
type Config struct {
	// MPM is prefork (default), event or worker.
	MPM string
	// Listen are the plain-HTTP addresses; when empty, two free 127.0.0.1
	// ports. With more than one listener prefork serializes accept with the
	// mpm-accept mutex (this build defines SINGLE_LISTEN_UNSERIALIZED_ACCEPT).
	Listen []string
	// SysvSem adds "Mutex sysvsem default": every Apache mutex becomes a
	// System V semaphore set.
	SysvSem bool
	// AuthDigest loads mod_auth_digest (and authn_core, authn_file,
	// authz_user) and protects /digest/ with Digest auth (DigestUser,
	// DigestPassword, DigestRealm).
	AuthDigest bool
	// SSL loads mod_ssl with "SSLSessionCache shmcb:…" and adds one more
	// Listen (Server.SSLAddr) with a "SSLEngine on" virtual host, using a
	// self-signed certificate generated into the server's directory.
	SSL bool
	// Status loads mod_status and serves its page at StatusPath
	// (Server.StatusURL).
	Status bool
	// User and Group the children run as (default www-data); ignored when
	// not running as root.
	User, Group string
	// Extra is appended verbatim to httpd.conf.
	Extra string
	// StartTimeout bounds the wait for readiness (default 20s).
	StartTimeout time.Duration
}

// Server is one Apache instance started by Start. Its fields are read-only.
type Server struct {
	Config   Config   // with defaults filled in
	Bin      string   // path of the apache2 binary
	Dir      string   // ServerRoot, a t.TempDir()
	ConfPath string   // the rendered httpd.conf
	PidFile  string   // PidFile
	ErrorLog string   // ErrorLog path
	Listen   []string // plain-HTTP addresses
	SSLAddr  string   // HTTPS address; "" unless Config.SSL
	// Token is the EnvToken entry ("APACHETEST_TOKEN=…") carried by every
	// process of this server.
	Token string
	// Starter is the `apache2 -k start` process; it has exited by the time
	// Start returns (it forks the master and exits, as in production).
	Starter proctest.Proc
	// StarterStart is when the starter started (ipcguard.Proc.Start, read
	// while it ran).
	StarterStart time.Time
	// StarterStdout and StarterStderr hold what the starter printed.
	StarterStdout, StarterStderr string
	// CertPool trusts the server's self-signed certificate (SSL only).
	CertPool *x509.CertPool

	t      *testing.T
	mu     sync.Mutex
	master proctest.Proc
	seen   map[proctest.Proc]bool // every process of ours ever observed
	// execd are the processes started through os/exec (starter, Ctl),
	// which their exec.Cmd waits for: never reaped or killed here.
	execd map[proctest.Proc]bool
	// diagShown is set once diagnostics were printed with a failure.
	diagShown bool
}

//go:embed httpd.conf.tmpl
var confTemplate string

var tmpl = template.Must(template.New("httpd.conf").Parse(confTemplate))

// Env returns the environment for the apache2 binary: this process's
// environment (so that nstest's token reaches Apache's processes too) with
// LANG=C. The rendered configuration does not use Debian's
// /etc/apache2/envvars, so no APACHE_* variables are needed.
func Env() []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "LANG=") || strings.HasPrefix(kv, "LC_ALL=") || strings.HasPrefix(kv, EnvToken+"=")
	})
	return append(env, "LANG=C", "LC_ALL=C")
}

// Start renders a complete httpd.conf for cfg into a fresh t.TempDir(), runs
// `apache2 -f CONF -k start` (which daemonizes: the starter exits and the
// master detaches), and waits until the pidfile names a live master, every
// listener accepts TCP connections and GET / answers 200 on the first
// listener (and over TLS on SSLAddr). It fails the test, with the error log
// and the starter's output, if that does not happen within
// cfg.StartTimeout or the server dies first. A t.Cleanup SIGKILLs every
// process of the server that is still alive.
func Start(t *testing.T, cfg Config) *Server {
	t.Helper()
	bin, err := nstest.LookPath("apache2")
	if err != nil {
		t.Fatalf("apachetest: %v", err)
	}
	if cfg.MPM == "" {
		cfg.MPM = "prefork"
	}
	switch cfg.MPM {
	case "prefork", "event", "worker":
	default:
		t.Fatalf("apachetest: unknown MPM %q", cfg.MPM)
	}
	if cfg.User == "" {
		cfg.User = "www-data"
	}
	if cfg.Group == "" {
		cfg.Group = "www-data"
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 20 * time.Second
	}
	n := 0
	if len(cfg.Listen) == 0 {
		n = 2
	}
	if cfg.SSL {
		n++
	}
	ports := srvtest.FreePorts(t, n)
	if len(cfg.Listen) == 0 {
		cfg.Listen, ports = ports[:2], ports[2:]
	}

	// The children (www-data) must reach htdocs.
	dir := srvtest.WorldReadableTempDir(t)
	s := &Server{
		Config:   cfg,
		Bin:      bin,
		Dir:      dir,
		ConfPath: filepath.Join(dir, "httpd.conf"),
		PidFile:  filepath.Join(dir, "run", "httpd.pid"),
		ErrorLog: filepath.Join(dir, "error.log"),
		Listen:   slices.Clone(cfg.Listen),
		Token:    EnvToken + "=" + randomHex(),
		t:        t,
		seen:     map[proctest.Proc]bool{},
		execd:    map[proctest.Proc]bool{},
	}
	if cfg.SSL {
		s.SSLAddr = ports[0]
	}
	if err := s.writeFiles(); err != nil {
		t.Fatalf("apachetest: %v", err)
	}
	t.Cleanup(s.cleanup)

	deadline := time.Now().Add(cfg.StartTimeout)
	if err := s.runStarter(deadline); err != nil {
		t.Fatalf("apachetest: %v\n%s", err, s.diagnostics())
	}
	if err := s.waitReady(deadline); err != nil {
		t.Fatalf("apachetest: %v\n%s", err, s.diagnostics())
	}
	return s
}

func randomHex() string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func (s *Server) writeFiles() error {
	for _, d := range []string{"htdocs", "htdocs/digest", "run", "tls"} {
		if err := os.MkdirAll(filepath.Join(s.Dir, d), 0o755); err != nil {
			return err
		}
	}
	files := map[string]string{
		"htdocs/index.html":        "apachetest ok\n",
		"htdocs/digest/index.html": "apachetest digest ok\n",
		"mime.types":               "text/html html htm\ntext/plain txt\n",
		"htdigest":                 fmt.Sprintf("%s:%s:%x\n", DigestUser, DigestRealm, md5.Sum([]byte(DigestUser+":"+DigestRealm+":"+DigestPassword))),
	}
	if s.Config.SSL {
		certPEM, keyPEM, pool, err := selfSignedCert()
		if err != nil {
			return err
		}
		files["tls/cert.pem"], files["tls/key.pem"] = string(certPEM), string(keyPEM)
		s.CertPool = pool
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(s.Dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	var conf bytes.Buffer
	err := tmpl.Execute(&conf, map[string]any{
		"TestName":    s.t.Name(),
		"Dir":         s.Dir,
		"PidFile":     s.PidFile,
		"ErrorLog":    s.ErrorLog,
		"ModDir":      ModDir,
		"Root":        os.Geteuid() == 0,
		"User":        s.Config.User,
		"Group":       s.Config.Group,
		"MPM":         s.Config.MPM,
		"SysvSem":     s.Config.SysvSem,
		"Listen":      s.Listen,
		"AuthDigest":  s.Config.AuthDigest,
		"DigestRealm": DigestRealm,
		"SSL":         s.Config.SSL,
		"SSLAddr":     s.SSLAddr,
		"Extra":       s.Config.Extra,
		"Status":      s.Config.Status,
		"StatusPath":  StatusPath,
	})
	if err != nil {
		return err
	}
	return os.WriteFile(s.ConfPath, conf.Bytes(), 0o644)
}

// command returns `apache2 -f CONF args…` with the server's environment.
func (s *Server) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, s.Bin, append([]string{"-f", s.ConfPath}, args...)...)
	cmd.Env = append(Env(), s.Token)
	cmd.Dir = s.Dir
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// Ctl runs `apache2 -f CONF -k action` (start, stop, graceful, restart,
// graceful-stop) and returns its combined output. It does not wait for the
// server to act on the signal; see Stop and Graceful.
func (s *Server) Ctl(action string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := s.command(ctx, "-k", action)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		return "", err
	}
	s.noteExecd(cmd.Process.Pid)
	err := cmd.Wait()
	out := buf.Bytes()
	if err != nil {
		return string(out), fmt.Errorf("apache2 -k %s: %w: %s", action, err, out)
	}
	return string(out), nil
}

func (s *Server) runStarter(deadline time.Time) error {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	cmd := s.command(ctx, "-k", "start")
	// Files rather than pipes: a daemon that kept the starter's stdout would
	// otherwise hold up Wait.
	outF, err := os.Create(filepath.Join(s.Dir, "starter.stdout"))
	if err != nil {
		return err
	}
	defer outF.Close()
	errF, err := os.Create(filepath.Join(s.Dir, "starter.stderr"))
	if err != nil {
		return err
	}
	defer errF.Close()
	cmd.Stdout, cmd.Stderr = outF, errF
	if err := cmd.Start(); err != nil {
		return err
	}
	st := s.noteExecd(cmd.Process.Pid)
	s.Starter, s.StarterStart = proctest.Of(st), st.Start
	werr := cmd.Wait()
	o, _ := os.ReadFile(outF.Name())
	e, _ := os.ReadFile(errF.Name())
	s.StarterStdout, s.StarterStderr = string(o), string(e)
	if werr != nil {
		return fmt.Errorf("apache2 -k start: %w", werr)
	}
	return nil
}

// noteExecd records a process started through os/exec, read while it
// cannot have been reaped yet (its exec.Cmd has not waited), and returns
// what was read (only PID when reading failed).
func (s *Server) noteExecd(pid int) ipcguard.Proc {
	st, err := proctest.Stat(pid)
	if err != nil {
		st = ipcguard.Proc{PID: pid}
	}
	s.mu.Lock()
	s.execd[proctest.Of(st)] = true
	s.mu.Unlock()
	return st
}

// readMaster returns the master named by the pidfile.
func (s *Server) readMaster() (proctest.Proc, error) {
	pid, err := srvtest.ReadPIDFile(s.PidFile)
	if err != nil {
		return proctest.Proc{}, err
	}
	return proctest.Identify(pid)
}

// waitReady polls (every 20ms, until deadline) for a live master in the
// pidfile, every listener accepting TCP and GET / returning 200.
func (s *Server) waitReady(deadline time.Time) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		last = s.checkReady()
		if last == nil {
			return nil
		}
		if errors.Is(last, errDied) {
			return last
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %w", s.Config.StartTimeout, last)
		}
		<-tick.C
	}
}

var errDied = errors.New("apache died")

func (s *Server) checkReady() error {
	// Track every process of ours (master and children) as it appears.
	alive := s.trackProcesses()
	m, err := s.readMaster()
	if err != nil {
		if len(alive) == 0 {
			return fmt.Errorf("%w: no process carries %s and the pidfile is unusable (%v)", errDied, s.Token, err)
		}
		return fmt.Errorf("pidfile: %w", err)
	}
	st, err := m.Stat()
	if err != nil || !st.Alive() {
		return fmt.Errorf("%w: master %v from the pidfile is not alive", errDied, m)
	}
	s.mu.Lock()
	s.master = m
	s.seen[m] = true
	s.mu.Unlock()
	for _, a := range s.allAddrs() {
		c, err := net.DialTimeout("tcp", a, time.Second)
		if err != nil {
			return fmt.Errorf("listener %s: %w", a, err)
		}
		c.Close()
	}
	if code, _, err := s.Get("/"); err != nil || code != http.StatusOK {
		return fmt.Errorf("GET / on %s: %d, %v", s.Listen[0], code, err)
	}
	// No TLS request here: a handshake takes the ssl-cache mutex, which
	// would overwrite the semaphore's GETPID (its creator until then).
	return nil
}

func (s *Server) allAddrs() []string {
	a := slices.Clone(s.Listen)
	if s.SSLAddr != "" {
		a = append(a, s.SSLAddr)
	}
	return a
}

// StatusPath is where Config.Status serves mod_status's page.
const StatusPath = "/server-status"

// StatusURL is the machine-readable (?auto) mod_status page on the first
// listener; it answers only with Config.Status.
func (s *Server) StatusURL() string { return "http://" + s.Listen[0] + StatusPath + "?auto" }

// Get fetches path over plain HTTP from the first listener.
func (s *Server) Get(path string) (int, string, error) {
	return srvtest.Get(s.Listen[0], path)
}

// GetTLS fetches path over HTTPS from SSLAddr, verifying the certificate.
func (s *Server) GetTLS(path string) (int, string, error) {
	tr := &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{RootCAs: s.CertPool, ServerName: "127.0.0.1"}}
	return srvtest.Fetch(tr, "https://"+s.SSLAddr+path)
}

func (s *Server) isExecd(p proctest.Proc) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.execd[p]
}

// trackProcesses records every live process carrying the token and returns
// them.
func (s *Server) trackProcesses() []ipcguard.Proc {
	ps := proctest.WithEnv(s.Token)
	s.mu.Lock()
	defer s.mu.Unlock()
	var alive []ipcguard.Proc
	for _, p := range ps {
		s.seen[proctest.Of(p)] = true
		if p.Alive() {
			alive = append(alive, p)
		}
	}
	return alive
}

// Processes returns the live processes of this server (those carrying
// Token): the master, its children and children orphaned by KillMaster9.
func (s *Server) Processes() []ipcguard.Proc { return s.trackProcesses() }

// Master returns the master process (as recorded when it became ready or
// re-read from the pidfile).
func (s *Server) Master() proctest.Proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.master
}

// MasterPID returns the PID in the pidfile, or 0 if it cannot be read.
func (s *Server) MasterPID() int { return srvtest.PID(s.PidFile) }

// ChildProcs returns the live processes whose parent is the master.
func (s *Server) ChildProcs() []ipcguard.Proc {
	m := s.Master()
	if !m.Alive() {
		return nil
	}
	var out []ipcguard.Proc
	for _, c := range proctest.ChildrenOf(m.PID) {
		if c.Alive() {
			out = append(out, c)
		}
	}
	// Had the master died and its PID been reused meanwhile, these would
	// be someone else's children.
	if !m.Alive() {
		return nil
	}
	s.mu.Lock()
	for _, c := range out {
		s.seen[proctest.Of(c)] = true
	}
	s.mu.Unlock()
	return out
}

// Children returns the PIDs of the live processes whose parent is the
// master.
func (s *Server) Children() []int {
	var pids []int
	for _, c := range s.ChildProcs() {
		pids = append(pids, c.PID)
	}
	return pids
}

// KillMaster9 SIGKILLs the master only, waits until it has exited and reaps
// it if it is this process's child (as inside nstest, where the daemonized
// master is re-parented to the test process). The children are left running
// as orphans.
func (s *Server) KillMaster9() {
	s.t.Helper()
	s.ChildProcs() // remember them
	srvtest.KillMaster9(s.t, s.Master())
}

// KillGroup9 SIGKILLs the master and then every other process of the server
// (its children, also orphaned ones), waits until all have exited and reaps
// those that are this process's children.
func (s *Server) KillGroup9() {
	s.t.Helper()
	if err := s.killAll(time.Now().Add(10 * time.Second)); err != nil {
		s.t.Fatalf("apachetest: KillGroup9: %v", err)
	}
}

func (s *Server) killAll(deadline time.Time) error {
	m := s.Master()
	s.ChildProcs()
	s.trackProcesses()
	var errs []error
	// The master first, so that it cannot fork replacements.
	if m.PID != 0 {
		errs = append(errs, m.Kill(deadline), m.Reap())
	}
	// Kill until no process of ours is left: a child could still be forking
	// while we kill (never in practice, but cheap to handle).
	for round := 0; ; round++ {
		s.trackProcesses()
		s.mu.Lock()
		var todo []proctest.Proc
		for p := range s.seen {
			if !s.execd[p] {
				todo = append(todo, p)
			}
		}
		s.mu.Unlock()
		for _, p := range todo {
			errs = append(errs, p.Signal(syscall.SIGKILL))
		}
		for _, p := range todo {
			errs = append(errs, p.WaitExited(deadline), p.Reap())
		}
		if len(s.trackProcesses()) == 0 || round == 10 {
			break
		}
	}
	if left := s.trackProcesses(); len(left) > 0 {
		errs = append(errs, fmt.Errorf("still alive: %+v", left))
	}
	errs = slices.DeleteFunc(errs, func(e error) bool { return e == nil || errors.Is(e, proctest.ErrGone) })
	return errors.Join(errs...)
}

// Stop runs `apache2 -k stop` and waits (on a pidfd, up to 20s) until the
// master and all other processes of the server have exited.
func (s *Server) Stop() {
	s.t.Helper()
	m := s.Master()
	s.ChildProcs()
	if _, err := s.Ctl("stop"); err != nil {
		s.t.Fatalf("apachetest: %v", err)
	}
	if err := s.waitAllExited(m, time.Now().Add(20*time.Second)); err != nil {
		s.t.Fatalf("apachetest: Stop: %v\n%s", err, s.diagnostics())
	}
}

func (s *Server) waitAllExited(m proctest.Proc, deadline time.Time) error {
	if err := m.WaitExited(deadline); err != nil {
		return err
	}
	if err := m.Reap(); err != nil {
		return err
	}
	for _, st := range s.trackProcesses() {
		p := proctest.Of(st)
		if s.isExecd(p) {
			continue
		}
		if err := p.WaitExited(deadline); err != nil {
			return err
		}
		if err := p.Reap(); err != nil {
			return err
		}
	}
	return nil
}

// Graceful runs `apache2 -k graceful` (SIGUSR1) and waits until the master
// logged a new "resuming normal operations" and serves GET / again.
func (s *Server) Graceful() { s.t.Helper(); s.restart("graceful") }

// Restart runs `apache2 -k restart` (SIGHUP) and waits like Graceful.
func (s *Server) Restart() { s.t.Helper(); s.restart("restart") }

const resumingMsg = "resuming normal operations"

func (s *Server) restart(action string) {
	s.t.Helper()
	before := strings.Count(s.ErrorLogText(), resumingMsg)
	if _, err := s.Ctl(action); err != nil {
		s.t.Fatalf("apachetest: %v", err)
	}
	deadline := time.Now().Add(s.Config.StartTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for strings.Count(s.ErrorLogText(), resumingMsg) <= before {
		if !s.Master().Alive() {
			s.t.Fatalf("apachetest: master died during %s\n%s", action, s.diagnostics())
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("apachetest: no new %q after %s\n%s", resumingMsg, action, s.diagnostics())
		}
		<-tick.C
	}
	if err := s.waitReady(deadline); err != nil {
		s.t.Fatalf("apachetest: after %s: %v\n%s", action, err, s.diagnostics())
	}
}

// ErrorLogText returns the current content of the error log.
func (s *Server) ErrorLogText() string { return srvtest.ReadText(s.ErrorLog) }

func (s *Server) diagnostics() string {
	s.mu.Lock()
	s.diagShown = true
	s.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "--- %s\n", s.ConfPath)
	conf, _ := os.ReadFile(s.ConfPath)
	b.Write(conf)
	fmt.Fprintf(&b, "--- starter %v stdout:\n%s--- starter stderr:\n%s", s.Starter, s.StarterStdout, s.StarterStderr)
	fmt.Fprintf(&b, "--- %s:\n%s", s.ErrorLog, s.ErrorLogText())
	return b.String()
}

// cleanup SIGKILLs everything of ours that is still alive.
func (s *Server) cleanup() {
	if err := s.killAll(time.Now().Add(10 * time.Second)); err != nil {
		s.t.Errorf("apachetest: cleanup: %v", err)
	}
	s.mu.Lock()
	shown := s.diagShown
	s.mu.Unlock()
	if s.t.Failed() && !shown {
		s.t.Logf("apachetest: server diagnostics:\n%s", s.diagnostics())
	}
}
