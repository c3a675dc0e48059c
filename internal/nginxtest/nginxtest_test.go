//go:build linux

package nginxtest_test

import (
	"context"
	"net"
	"net/http"
	"net/http/fcgi"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/safe-restart/safe-restart/internal/nginxtest"
	"github.com/safe-restart/safe-restart/internal/nstest"
	"github.com/safe-restart/safe-restart/internal/proctest"
	"github.com/safe-restart/safe-restart/ipcguard"
)

// TestStart: the master (root, its own session) and two www-data workers
// serve GET / on TCP and the unix socket; after KillMaster9 the workers,
// orphaned, keep serving.
func TestStart(t *testing.T) {
	nstest.RequireBinaries(t, "nginx")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := nginxtest.Start(t, nginxtest.Options{UnixSocket: true})
	m, err := srv.Master()
	if err != nil {
		t.Fatal(err)
	}
	st, _ := m.Stat()
	if st.PPID != 1 || st.Session != m.PID || st.UID != 0 {
		t.Errorf("master %+v: want parent 1, its own session, root", st)
	}
	workers := srv.Workers()
	if len(workers) != 2 {
		t.Fatalf("%d workers, want 2", len(workers))
	}
	for _, w := range workers {
		if w.UID != 33 || w.Session != m.PID {
			t.Errorf("worker %+v: want uid 33 in the master's session", w)
		}
	}
	if c, body, err := srv.Get("/"); c != 200 || body != nginxtest.IndexBody || err != nil {
		t.Fatalf("GET /: %d %q %v", c, body, err)
	}
	// nginx shares memory through anonymous mappings: no SysV object.
	snap, err := ipcguard.Take(context.Background(), ipcguard.Source{})
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Sem)+len(snap.Shm)+len(snap.Msg) != 0 {
		t.Errorf("nginx created SysV IPC objects: %+v", snap)
	}
	if c, _, err := srv.GetUnix("/"); c != 200 || err != nil {
		t.Fatalf("GET / on the unix socket: %d %v", c, err)
	}
	srv.KillMaster9()
	for _, w := range workers {
		if st, err := proctest.Of(w).Stat(); err != nil || !st.Alive() || st.PPID != 1 {
			t.Errorf("worker %d after kill -9 of the master: %+v, %v; want alive, re-parented to 1", w.PID, st, err)
		}
	}
	if c, _, err := srv.Get("/"); c != 200 || err != nil {
		t.Fatalf("GET / from the orphans: %d %v", c, err)
	}
}

// TestFastCGIPass: with FastCGIPass, GET /x.php reaches the FastCGI server
// (here Go's net/http/fcgi, on TCP and on a unix socket) with
// SCRIPT_FILENAME = Root + the script's path; static files come from Root.
func TestFastCGIPass(t *testing.T) {
	nstest.RequireBinaries(t, "nginx")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	root := t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "static.txt"), []byte("static\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "fcgi.sock")
	for _, network := range []string{"tcp", "unix"} {
		addr := "127.0.0.1:0"
		if network == "unix" {
			addr = sock
		}
		l, err := net.Listen(network, addr)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if network == "unix" {
			if err := os.Chmod(filepath.Dir(sock), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(sock, 0o666); err != nil {
				t.Fatal(err)
			}
		}
		go fcgi.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			env := fcgi.ProcessEnv(r)
			w.Write([]byte(env["SCRIPT_FILENAME"] + " " + r.URL.RawQuery))
		}))
		pass := l.Addr().String()
		if network == "unix" {
			pass = "unix:" + sock
		}
		srv := nginxtest.Start(t, nginxtest.Options{FastCGIPass: pass, Root: root})
		if c, body, err := srv.Get("/dir/info.php?a=1"); c != 200 || body != root+"/dir/info.php a=1" || err != nil {
			t.Errorf("%s: GET /dir/info.php?a=1: %d %q %v", network, c, body, err)
		}
		if c, body, err := srv.Get("/static.txt"); c != 200 || body != "static\n" || err != nil {
			t.Errorf("%s: GET /static.txt: %d %q %v", network, c, body, err)
		}
		if conf, _ := os.ReadFile(srv.ConfPath); !strings.Contains(string(conf), "fastcgi_pass "+pass+";") {
			t.Errorf("%s: no fastcgi_pass %s in\n%s", network, pass, conf)
		}
	}
}
