//go:build linux

package nginxtest

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/safe-restart/safe-restart/internal/nstest"
	"github.com/safe-restart/safe-restart/internal/proctest"
	"github.com/safe-restart/safe-restart/internal/srvtest"
	"github.com/safe-restart/safe-restart/ipcguard"
)

// IndexBody is what GET / answers from the default document root.
const IndexBody = "nginxtest ok\n"

// Options selects what Start puts into nginx.conf. The zero value is two
// workers serving Dir/html on a free 127.0.0.1 port.
type Options struct {
	// FastCGIPass, when set, is the FastCGI server requests for *.php are
	// passed to: "127.0.0.1:PORT" or "unix:/path/to.sock" (see the package
	// documentation).
	FastCGIPass string
	// Root is the document root, used as given (it must be readable by
	// www-data); "" means Dir/html, created with index.html (IndexBody).
	Root string
	// UnixSocket adds a second listener, unix:Dir/nginx.sock (Server.Socket).
	UnixSocket bool
	// ErrorLogLevel is the main error_log's level; "" leaves nginx's
	// default (error), at which a successful reload logs nothing.
	ErrorLogLevel string
	// Workers is worker_processes (default 2).
	Workers int
	// HTTPExtra is appended verbatim inside the http block.
	HTTPExtra string
	// MainExtra is appended verbatim to the main context.
	MainExtra string
	// StartTimeout bounds the wait for readiness (default 20s).
	StartTimeout time.Duration
}

// Server is one nginx started by Start. Its fields are read-only.
type Server struct {
	Options  Options // with defaults filled in
	Bin      string  // the nginx binary
	Dir      string  // a t.TempDir(): config, pidfile, logs, temp paths
	ConfPath string  // the rendered nginx.conf
	PidFile  string
	ErrorLog string
	Addr     string // "127.0.0.1:PORT", the TCP listener
	Port     int
	Socket   string // the unix socket's path; "" unless Options.UnixSocket
	// StarterOutput is what `nginx -c CONF` printed.
	StarterOutput string

	t *testing.T
}

//go:embed nginx.conf.tmpl
var confTemplate string

var tmpl = template.Must(template.New("nginx.conf").Parse(confTemplate))

// Start renders nginx.conf for o into a fresh t.TempDir(), runs `nginx -c
// CONF` and waits until the pidfile names a live master whose workers all
// run (as www-data when root) and GET / on Addr answers (any HTTP status: a
// FastCGI root may have no index). It fails the
// test, with the error log and the starter's output, if that does not
// happen within o.StartTimeout or the master dies first. A t.Cleanup
// SIGKILLs every nginx process of the namespace and reaps them.
func Start(t *testing.T, o Options) *Server {
	t.Helper()
	s := Prepare(t, o)
	if err := s.start(); err != nil {
		t.Fatalf("nginxtest: %v\n%s", err, s.diagnostics())
	}
	return s
}

// Prepare renders nginx.conf for o into a fresh t.TempDir() like Start,
// and starts nothing: for a test that runs nginx itself (in the
// foreground, `nginx -g 'daemon off;' -c CONF`, under safe-restart run).
// Its cleanup SIGKILLs every nginx process of the namespace, as Start's
// does; it too must run inside nstest.
func Prepare(t *testing.T, o Options) *Server {
	t.Helper()
	if !nstest.Inside() {
		t.Fatal("nginxtest: Start and Prepare run only inside nstest.InPrivateNamespaces")
	}
	bin, err := nstest.LookPath("nginx")
	if err != nil {
		t.Fatalf("nginxtest: %v", err)
	}
	if o.Workers == 0 {
		o.Workers = 2
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 20 * time.Second
	}
	// The workers (www-data) must reach the document root.
	dir := srvtest.WorldReadableTempDir(t)
	s := &Server{Options: o, Bin: bin, Dir: dir, ConfPath: filepath.Join(dir, "nginx.conf"),
		PidFile: filepath.Join(dir, "nginx.pid"), ErrorLog: filepath.Join(dir, "error.log"), Addr: srvtest.FreeAddr(t), t: t}
	s.Port, _ = strconv.Atoi(s.Addr[strings.LastIndex(s.Addr, ":")+1:])
	if o.UnixSocket {
		s.Socket = filepath.Join(dir, "nginx.sock")
	}
	if err := s.writeFiles(); err != nil {
		t.Fatalf("nginxtest: %v", err)
	}
	t.Cleanup(s.cleanup)
	return s
}

func (s *Server) writeFiles() error {
	for _, d := range []string{"html", "tmp"} {
		if err := os.MkdirAll(filepath.Join(s.Dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "html", "index.html"), []byte(IndexBody), 0o644); err != nil {
		return err
	}
	var conf bytes.Buffer
	err := tmpl.Execute(&conf, map[string]any{
		"TestName": s.t.Name(), "AsRoot": os.Geteuid() == 0, "Workers": s.Options.Workers,
		"PidFile": s.PidFile, "ErrorLog": s.ErrorLog, "Level": s.Options.ErrorLogLevel, "MainExtra": s.Options.MainExtra, "Dir": s.Dir,
		"Addr": s.Addr, "Socket": s.Socket, "DocRoot": or(s.Options.Root, filepath.Join(s.Dir, "html")),
		"FastCGIPass": s.Options.FastCGIPass, "Extra": s.Options.HTTPExtra,
	})
	if err != nil {
		return err
	}
	return os.WriteFile(s.ConfPath, conf.Bytes(), 0o644)
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// start runs `nginx -c CONF` and waits until the server is ready.
func (s *Server) start() error {
	deadline := time.Now().Add(s.Options.StartTimeout)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	out, err := os.Create(filepath.Join(s.Dir, "starter.out"))
	if err != nil {
		return err
	}
	defer out.Close()
	// A file rather than a pipe: the daemon inherits it.
	cmd := exec.CommandContext(ctx, s.Bin, "-c", s.ConfPath)
	cmd.Stdout, cmd.Stderr, cmd.WaitDelay = out, out, 5*time.Second
	runErr := cmd.Run()
	b, _ := os.ReadFile(out.Name())
	s.StarterOutput = string(b)
	if runErr != nil {
		return fmt.Errorf("%s -c %s: %w", s.Bin, s.ConfPath, runErr)
	}
	return s.WaitReady(deadline)
}

// WaitReady polls (every 20ms, until deadline) until the pidfile names a
// live nginx master with all its workers (switched to www-data when root)
// and GET / on Addr answers.
func (s *Server) WaitReady(deadline time.Time) error {
	for {
		err := s.ready()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *Server) ready() error {
	m, err := s.Master()
	if err != nil {
		return err
	}
	if !m.Alive() {
		return fmt.Errorf("master %v is not alive", m)
	}
	// A worker is root from its fork until it switches to www-data.
	workers := s.Workers()
	if len(workers) < s.Options.Workers {
		return fmt.Errorf("%d of %d workers", len(workers), s.Options.Workers)
	}
	for _, w := range workers {
		if os.Geteuid() == 0 && w.UID == 0 {
			return fmt.Errorf("worker %d has not switched to www-data yet", w.PID)
		}
	}
	_, _, err = s.Get("/")
	return err
}

// Master returns the live master the pidfile names, after checking that it
// runs the nginx binary.
func (s *Server) Master() (proctest.Proc, error) {
	pid := s.MasterPID()
	if pid == 0 {
		return proctest.Proc{}, fmt.Errorf("no pid in %s", s.PidFile)
	}
	st, err := proctest.Stat(pid)
	if err != nil {
		return proctest.Proc{}, err
	}
	if st.Exe != s.Bin {
		return proctest.Proc{}, fmt.Errorf("pidfile %s names pid %d, which runs %q", s.PidFile, pid, st.Exe)
	}
	return proctest.Of(st), nil
}

// MasterPID returns the pid in the pidfile, or 0 if it cannot be read.
func (s *Server) MasterPID() int { return srvtest.PID(s.PidFile) }

// Workers returns the live children of the master the pidfile names.
func (s *Server) Workers() []ipcguard.Proc {
	var out []ipcguard.Proc
	for _, c := range proctest.ChildrenOf(s.MasterPID()) {
		if c.Alive() && c.Exe == s.Bin {
			out = append(out, c)
		}
	}
	return out
}

// Processes returns every live process of the namespace running the nginx
// binary: masters, workers, orphans.
func (s *Server) Processes() []ipcguard.Proc {
	var out []ipcguard.Proc
	for _, p := range proctest.Processes() {
		if p.Alive() && p.Exe == s.Bin {
			out = append(out, p)
		}
	}
	return out
}

// Get fetches path over plain HTTP from Addr, without keep-alive.
func (s *Server) Get(path string) (int, string, error) {
	return srvtest.Get(s.Addr, path)
}

// GetUnix fetches path over the unix socket listener.
func (s *Server) GetUnix(path string) (int, string, error) {
	tr := &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", s.Socket)
	}}
	return srvtest.Fetch(tr, "http://localhost"+path)
}

// ErrorLogText returns the current content of the error log.
func (s *Server) ErrorLogText() string { return srvtest.ReadText(s.ErrorLog) }

// KillMaster9 SIGKILLs the master the pidfile names, waits until it has
// exited and reaps it (inside nstest it is the test process's child). The
// workers are left running, orphaned; the pidfile stays, stale.
func (s *Server) KillMaster9() {
	s.t.Helper()
	m, err := s.Master()
	if err != nil {
		s.t.Fatalf("nginxtest: KillMaster9: %v", err)
	}
	srvtest.KillMaster9(s.t, m)
}

func (s *Server) diagnostics() string {
	conf, _ := os.ReadFile(s.ConfPath)
	return fmt.Sprintf("--- %s\n%s--- starter output:\n%s--- %s:\n%s", s.ConfPath, conf, s.StarterOutput, s.ErrorLog, s.ErrorLogText())
}

// cleanup SIGKILLs every nginx process of the namespace (all are this
// test's) and reaps those re-parented to the test process.
func (s *Server) cleanup() {
	if err := srvtest.KillAll(s.Processes, "nginx", time.Now().Add(10*time.Second)); err != nil {
		s.t.Errorf("nginxtest: cleanup: %v", err)
	}
	if s.t.Failed() {
		s.t.Logf("nginxtest: server diagnostics:\n%s", s.diagnostics())
	}
}
