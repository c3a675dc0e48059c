package server

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
)

// writeServiceFile writes text as dir/name and returns its path.
func writeServiceFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// minimalService is the least a service file must say.
const minimalService = `
binary = "/bin/sh"
start = ["/bin/sh", "-c", "exit 0"]
pidfile = "/run/minimal.pid"
`

const fullService = `
name = "myapp"
binary = "/bin/sh"
start = ["/bin/sh", "-c", "start", "{conf}"]
conf = "/etc/myapp.conf"
pidfile = "/run/myapp.pid"
config_test = ["/bin/sh", "-c", "test -n \"$0\"", "{conf}"]
error_log = "/var/log/myapp.log"
user = "root"
workers = true

[signals]
reload = "USR2"
hard_reload = "SIGHUP"

[stop]
graceful = "QUIT"
ladder = "TERM:7s,KILL:3s:all"

[health]
url = "http://127.0.0.1:8080/healthz"
http = true

[hooks]
pre_stop = "lb-drain myapp"
post_start = "lb-enable myapp"
timeout = "10s"

[log]
fatal = ["^FATAL", "out of memory"]
reloaded = '\[pid (?P<pid>\d+)\] reloaded'
rejected = "kept the old configuration"

[ipc]
owner = "root"
creator = "0"
key = 0
nsems = 1
mode = "0600"
kinds = ["sem", "shm"]
`

func TestLoadServiceFileFull(t *testing.T) {
	path := writeServiceFile(t, t.TempDir(), "ignored.toml", fullService)
	p, err := LoadServiceFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "myapp" || p.Kind != "service" || p.Binary != "/bin/sh" || p.Conf != "/etc/myapp.conf" || p.HealthURL != "http://127.0.0.1:8080/healthz" {
		t.Errorf("profile %+v", p)
	}
	k := p.Driver.(*serviceKind)
	if got := strings.Join(k.StartArgv(p, "/x.conf"), " "); got != "/bin/sh -c start /x.conf" {
		t.Errorf("start argv %q", got)
	}
	if p.ReloadSignal(false) != syscall.SIGUSR2 || p.ReloadSignal(true) != syscall.SIGHUP {
		t.Errorf("reload signals %v %v", p.ReloadSignal(false), p.ReloadSignal(true))
	}
	wantLadder := proc.Ladder{{Signal: syscall.SIGQUIT, Wait: 45 * time.Second}, {Signal: syscall.SIGTERM, Wait: 7 * time.Second}, {Signal: syscall.SIGKILL, Wait: 3 * time.Second, All: true}}
	if got := p.Ladder(45 * time.Second); !equalLadders(got, wantLadder) {
		t.Errorf("ladder(45s) = %v, want %v", got, wantLadder)
	}
	if got := p.Ladder(0); !equalLadders(got, wantLadder[1:]) {
		t.Errorf("ladder(0) = %v, want %v (no graceful step)", got, wantLadder[1:])
	}
	if !k.SpeaksHTTP() || k.Reexecs() || !k.ReloadStartsChildren() || k.user != (Account{Name: "root", ID: 0}) {
		t.Errorf("kind %+v", k)
	}
	sig := k.Signature(p, RunConfig{})
	want := ipcguard.Signature{Service: "myapp", Kinds: []ipcguard.Kind{ipcguard.KindSem, ipcguard.KindShm}, Key: 0, NSems: 1, Mode: 0o600, UID: 0, CUID: 0, Exe: "/bin/sh"}
	if sig == nil || sig.String() != want.String() || sig.Exe != want.Exe {
		t.Errorf("signature %+v, want %+v", sig, want)
	}
	// --binary moves the executable of a signature that did not name one.
	p.Binary = "/bin/bash"
	if sig := k.Signature(p, RunConfig{}); sig.Exe != "/bin/bash" {
		t.Errorf("signature exe %q after --binary, want /bin/bash", sig.Exe)
	}
	if len(k.warnings) != 0 {
		t.Errorf("warnings %q for a file that leaves nothing open", k.warnings)
	}
	if want := (Hooks{PreStop: "lb-drain myapp", PostStart: "lb-enable myapp", Timeout: 10 * time.Second}); p.Hooks != want {
		t.Errorf("hooks %+v, want %+v", p.Hooks, want)
	}
}

func equalLadders(a, b proc.Ladder) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestLoadServiceFileDefaults(t *testing.T) {
	path := writeServiceFile(t, t.TempDir(), "minimal.toml", minimalService)
	p, err := LoadServiceFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k := p.Driver.(*serviceKind)
	if p.Name != "minimal" || p.ReloadSignal(false) != syscall.SIGHUP || p.ReloadSignal(true) != syscall.SIGHUP {
		t.Errorf("name %q, reload %v/%v; want the file's name and HUP", p.Name, p.ReloadSignal(false), p.ReloadSignal(true))
	}
	want := proc.Ladder{{Signal: syscall.SIGTERM, Wait: 10 * time.Second}, {Signal: syscall.SIGKILL, Wait: 5 * time.Second, All: true}}
	if got := p.Ladder(30 * time.Second); !equalLadders(got, want) {
		t.Errorf("ladder %v, want %v", got, want)
	}
	if k.Signature(p, RunConfig{}) != nil || k.SpeaksHTTP() || k.Reexecs() || k.ReloadStartsChildren() || k.ReloadsLogged("x", ipcguard.Proc{PID: 1}) != -1 {
		t.Errorf("defaults %+v", k)
	}
	rc, err := ReadRunConfig(t.Context(), p, "")
	if err != nil || rc.PidFile != "/run/minimal.pid" || len(rc.Warnings) != 2 {
		t.Errorf("run config %+v, %v; want the pidfile and two warnings (no config_test, no log.reloaded)", rc, err)
	}
}

// TestLoadServiceFileErrors: every kind of bad input is refused, naming the
// file, the key and the problem.
func TestLoadServiceFileErrors(t *testing.T) {
	dir := t.TempDir()
	noExec := writeServiceFile(t, dir, "script", "#!/bin/sh\n")
	base := minimalService + "error_log = \"/var/log/x.log\"\n"
	tests := []struct {
		name, text, want string
	}{
		{"unknown top key", base + "pidfle = \"/x\"\n", "unknown key(s) pidfle"},
		{"unknown table key", base + "[stop]\ngracefull = \"QUIT\"\n", "unknown key(s) stop.gracefull"},
		{"unknown table", base + "[helth]\nurl = \"http://x\"\n", "unknown key(s) helth"},
		{"syntax", base + "start = [\n", "toml: line"},
		{"type", "start = \"/bin/sh\"\n", `last key "start"`},
		{"no binary", strings.Replace(base, `binary = "/bin/sh"`, "", 1), "binary: missing"},
		{"relative binary", strings.Replace(base, `binary = "/bin/sh"`, `binary = "sh"`, 1), `bad binary "sh": not an absolute path`},
		{"missing binary", strings.Replace(base, `binary = "/bin/sh"`, `binary = "/nonexistent/sh"`, 1), `bad binary "/nonexistent/sh": not an executable file`},
		{"not executable", strings.Replace(base, `binary = "/bin/sh"`, `binary = "`+noExec+`"`, 1), "not an executable file"},
		{"no start", strings.Replace(base, `start = ["/bin/sh", "-c", "exit 0"]`, "", 1), "start: missing"},
		{"relative start", strings.Replace(base, `start = ["/bin/sh"`, `start = ["sh"`, 1), `bad start[0] "sh"`},
		{"relative config test", base + `config_test = ["sh", "-n"]` + "\n", `bad config_test[0] "sh"`},
		{"conf placeholder", strings.Replace(base, `"exit 0"`, `"{conf}"`, 1), "start: uses {conf} but conf is not set"},
		{"no pidfile", strings.Replace(base, `pidfile = "/run/minimal.pid"`, "", 1), "pidfile: missing"},
		{"relative pidfile", strings.Replace(base, `"/run/minimal.pid"`, `"run/x.pid"`, 1), `bad pidfile "run/x.pid"`},
		{"relative error log", strings.Replace(base, `"/var/log/x.log"`, `"x.log"`, 1), `bad error_log "x.log"`},
		{"relative conf", base + "conf = \"x.conf\"\n", `bad conf "x.conf"`},
		{"bad name", "name = \"../x\"\n" + base, `name "../x"`},
		{"unknown user", base + "user = \"no-such-user-xyz\"\n", `user: unknown user "no-such-user-xyz"`},
		{"reload signal", base + "[signals]\nreload = \"HUPP\"\n", `signals.reload: unknown signal "HUPP"`},
		{"hard reload signal", base + "[signals]\nhard_reload = \"99\"\n", "signals.hard_reload: bad signal number 99"},
		{"hook timeout", base + "[hooks]\ntimeout = \"soon\"\n", `hooks.timeout: "soon" is not a positive duration`},
		{"graceful signal", base + "[stop]\ngraceful = \"NOPE\"\n", "stop.graceful: unknown signal"},
		{"ladder", base + "[stop]\nladder = \"TERM\"\n", `stop.ladder: ladder step "TERM"`},
		{"ladder wait", base + "[stop]\nladder = \"TERM:soon\"\n", `stop.ladder: ladder step "TERM:soon": bad wait`},
		{"stop ladder", base + "[stop]\nladder = \"STOP:1s\"\n", `stop.ladder: ladder step "STOP:1s": SIGSTOP freezes a process, it ends none`},
		{"continue ladder", base + "[stop]\nladder = \"TERM:10s,CONT:1s\"\n", "SIGCONT ends no process"},
		{"empty ladder", base + "[stop]\nladder = \"\"\n", "stop.ladder: empty"},
		{"stop graceful", base + "[stop]\ngraceful = \"TSTP\"\n", "stop.graceful: SIGTSTP freezes a process"},
		{"stop reload", base + "[signals]\nreload = \"STOP\"\n", "signals.reload: SIGSTOP reloads no daemon"},
		{"kill reload", base + "[signals]\nreload = \"KILL\"\n", "signals.reload: SIGKILL reloads no daemon"},
		{"term hard reload", base + "[signals]\nhard_reload = \"TERM\"\n", "signals.hard_reload: SIGTERM reloads no daemon"},
		{"empty reload", base + "[signals]\nreload = \" \"\n", "signals.reload: empty"},
		{"proc pidfile", strings.Replace(base, `"/run/minimal.pid"`, `"/proc/1/stat"`, 1), `bad pidfile "/proc/1/stat": a file of the kernel's /proc`},
		{"dev pidfile", strings.Replace(base, `"/run/minimal.pid"`, `"/dev/zero"`, 1), `bad pidfile "/dev/zero"`},
		{"proc dir pidfile", strings.Replace(base, `"/run/minimal.pid"`, `"/proc/."`, 1), `bad pidfile "/proc/."`},
		{"long name", "name = \"" + strings.Repeat("n", 65) + "\"\n" + base, "name \"nnnn"},
		{"health url", base + "[health]\nurl = \"127.0.0.1:80\"\n", `health.url "127.0.0.1:80"`},
		{"fatal regex", base + "[log]\nfatal = [\"ok\", \"(\"]\n", "log.fatal[1]: error parsing regexp"},
		{"reloaded regex", base + "[log]\nreloaded = \"[\"\n", "log.reloaded: error parsing regexp"},
		{"rejected regex", base + "[log]\nrejected = \"a**\"\n", "log.rejected: error parsing regexp"},
		{"reloaded without log", minimalService + "[log]\nreloaded = \"ok\"\n", "set error_log"},
		{"ipc without key", base + "[ipc]\nowner = \"root\"\n", "needs at least ipc.owner, ipc.key and ipc.exe"},
		{"ipc without owner", base + "[ipc]\nkey = \"private\"\n", "needs at least ipc.owner"},
		{"ipc key", base + "[ipc]\nowner = \"root\"\nkey = \"zz\"\n", `bad ipc.key "zz": not an IPC key`},
		{"ipc key range", base + "[ipc]\nowner = \"root\"\nkey = 0x1ffffffff\n", "ipc.key 8589934591: out of the range"},
		{"ipc key type", base + "[ipc]\nowner = \"root\"\nkey = 1.5\n", "ipc.key: want"},
		{"ipc nsems", base + "[ipc]\nowner = \"root\"\nkey = 0\nnsems = 0\n", `bad ipc.nsems "0"`},
		{"ipc mode", base + "[ipc]\nowner = \"root\"\nkey = 0\nmode = \"999\"\n", `bad ipc.mode "999"`},
		{"ipc mode type", base + "[ipc]\nowner = \"root\"\nkey = 0\nmode = 0o600\n", `last key "ipc.mode"`},
		{"ipc kinds", base + "[ipc]\nowner = \"root\"\nkey = 0\nkinds = [\"sem\", \"pipe\"]\n", `bad ipc.kinds "pipe"`},
		{"ipc owner", base + "[ipc]\nowner = \"no-such-user-xyz\"\nkey = 0\n", `bad ipc.owner "no-such-user-xyz": unknown user`},
		{"ipc exe", base + "[ipc]\nowner = \"root\"\nkey = 0\nexe = \"sh\"\n", `bad ipc.exe "sh": not an absolute path`},
		{"ipc unknown key", base + "[ipc]\nowner = \"root\"\nkey = 0\nuid = 3\n", "unknown key(s) ipc.uid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeServiceFile(t, dir, "svc.toml", tt.text)
			_, err := LoadServiceFile(path)
			if !errors.Is(err, ErrServiceFile) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v; want ErrServiceFile naming %s and %q", err, path, tt.want)
			}
		})
	}
}

func TestResolveService(t *testing.T) {
	dir := t.TempDir()
	writeServiceFile(t, dir, "myapp.toml", minimalService)
	writeServiceFile(t, dir, "apache2.toml", minimalService)
	for _, tt := range []struct{ service, wantName, wantKind string }{
		{"myapp", "myapp", "service"},                              // DIR/NAME.toml
		{filepath.Join(dir, "myapp.toml"), "myapp", "service"},     // a path
		{"apache2", "apache2", "apache"},                           // a built-in name wins
		{filepath.Join(dir, "apache2.toml"), "apache2", "service"}, // unless a path is given
	} {
		p, err := ResolveService(tt.service, dir)
		if err != nil || p.Name != tt.wantName || p.Kind != tt.wantKind {
			t.Errorf("ResolveService(%q) = %s (%s), %v; want %s (%s)", tt.service, p.Name, p.Kind, err, tt.wantName, tt.wantKind)
		}
	}
	if _, err := ResolveService("nosuch", dir); !errors.Is(err, ErrUnknownService) || !strings.Contains(err.Error(), filepath.Join(dir, "nosuch.toml")) {
		t.Errorf("unknown service: %v; want ErrUnknownService naming the file looked for", err)
	}
	if _, err := ResolveService("x.toml", dir); !errors.Is(err, ErrServiceFile) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v; want ErrServiceFile wrapping ErrNotExist", err)
	}
}

func TestServiceKindReloaded(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "d.pid")
	k := &serviceKind{pidFile: pidFile}
	var err error
	if k.reloadedRE, err = compileOptional("r", `\[pid (?P<pid>\d+)\] reloaded generation`); err != nil {
		t.Fatal(err)
	}
	k.rejectedRE, _ = compileOptional("r", `refused the new configuration`)
	old := ipcguard.Proc{PID: 42}
	check := func(logged string, wantPID int, wantErr error) {
		t.Helper()
		pid, err := k.Reloaded(logged, old)
		if pid != wantPID || !errors.Is(err, wantErr) {
			t.Errorf("reloaded(%q) = %d, %v; want %d, %v", logged, pid, err, wantPID, wantErr)
		}
	}
	check("", 0, nil)
	check("[pid 7] reloaded generation 2\n", 0, nil) // another master's line
	check("noise\n[pid 42] reloaded generation 2\n", 42, nil)
	check("[pid 42] refused the new configuration\n", 0, ErrReloadRejected)
	if n := k.ReloadsLogged("[pid 42] reloaded generation 2\n[pid 7] reloaded generation 1\n[pid 42] reloaded generation 3\n", old); n != 2 {
		t.Errorf("reloadsLogged = %d, want 2 (only master 42's)", n)
	}

	// A master that re-executes: the new one is the pidfile's, once it
	// is no longer the old pid.
	k.reexec = true
	if err := os.WriteFile(pidFile, []byte("42\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	check("[pid 43] reloaded generation 2\n", 0, nil)
	if err := os.WriteFile(pidFile, []byte("43\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	check("", 0, nil)
	check("[pid 43] reloaded generation 2\n", 43, nil)

	// Without a pattern a reload counts as logged at once.
	k.reexec, k.reloadedRE = false, nil
	check("", 42, nil)
}

func TestServiceKindFatal(t *testing.T) {
	k := &serviceKind{}
	k.fatals = append(k.fatals, regexpMust(t, `^FATAL`), regexpMust(t, `out of memory`))
	p := Profile{Driver: k}
	got := p.FatalLines("ok\nFATAL: gone\n  \nwarn: out of memory soon\nfine FATAL\n")
	if strings.Join(got, "|") != "FATAL: gone|warn: out of memory soon" {
		t.Errorf("fatal lines %q", got)
	}
}

func regexpMust(t *testing.T, expr string) *regexp.Regexp {
	t.Helper()
	re, err := compileOptional("test", expr)
	if err != nil {
		t.Fatal(err)
	}
	return re
}

// FuzzLoadServiceFile: no input panics the loader, and every input either
// loads into a usable profile or is refused with ErrServiceFile.
func FuzzLoadServiceFile(f *testing.F) {
	f.Add(fullService)
	f.Add(minimalService)
	f.Add(minimalService + "[ipc]\nowner = \"root\"\nkey = -1\nnsems = 70000\n")
	f.Add("[stop]\nladder = \"KILL:1s:all,TERM:0s\"\n" + minimalService)
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, text string) {
		path := writeServiceFile(t, dir, "fuzz.toml", text)
		p, err := LoadServiceFile(path)
		if err != nil {
			if !errors.Is(err, ErrServiceFile) {
				t.Fatalf("error %v does not wrap ErrServiceFile", err)
			}
			return
		}
		if p.Kind != "service" || !ValidName.MatchString(p.Name) || len(p.Driver.StartArgv(p, "/c")) == 0 || len(p.Ladder(time.Second)) == 0 {
			t.Fatalf("loaded an unusable profile %+v from %q", p, text)
		}
	})
}

// TestExampleServiceFile: examples/service/myapp.toml loads (with a binary
// and a user this machine has) and documents every key of the schema.
func TestExampleServiceFile(t *testing.T) {
	text, err := os.ReadFile("../../examples/service/myapp.toml")
	if err != nil {
		t.Fatal(err)
	}
	local := strings.NewReplacer("/usr/local/bin/myapp", "/bin/sh", "www-data", "root").Replace(string(text))
	p, err := LoadServiceFile(writeServiceFile(t, t.TempDir(), "myapp.toml", local))
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "myapp" || p.Driver.(*serviceKind).sig == nil {
		t.Errorf("example loaded as %+v", p)
	}
	keys := tomlKeys(reflect.TypeOf(serviceFile{}))
	if len(keys) != 30 {
		t.Fatalf("schema keys %q: want 30 (update this count with the schema)", keys)
	}
	for _, key := range keys {
		if !strings.Contains(string(text), key+" = ") {
			t.Errorf("the example does not show key %q", key)
		}
	}
}

// tomlKeys lists the leaf keys of a struct's toml tags.
func tomlKeys(typ reflect.Type) []string {
	var keys []string
	for i := range typ.NumField() {
		f := typ.Field(i)
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct {
			keys = append(keys, tomlKeys(ft)...)
			continue
		}
		keys = append(keys, f.Tag.Get("toml"))
	}
	return keys
}
