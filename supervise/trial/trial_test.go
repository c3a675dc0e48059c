package trial

import (
	"reflect"
	"testing"

	"github.com/safe-restart/safe-restart/supervise/server"
	"github.com/safe-restart/safe-restart/supervise/sock"
)

func TestOutermost(t *testing.T) {
	got := outermost([]string{"/run/apache2", "/var/log/apache2", "/run/apache2/socks", "/run/apache2", "/run/apache22", "/var/log"})
	want := []string{"/run/apache2", "/run/apache22", "/var/log"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("outermost = %q, want %q", got, want)
	}
}

func TestMutexDirs(t *testing.T) {
	got := mutexDirs(map[string]string{
		"default":      `dir="/var/run/apache2/" mechanism=default`,
		"ssl-cache":    "using_defaults",
		"mpm-accept":   `dir="/var/lock/apache2" mechanism=fcntl`,
		"rewrite-map":  `dir="relative" mechanism=fcntl`,
		"authdigest-x": `dir="/unterminated mechanism=fcntl`,
	})
	want := []string{"/var/lock/apache2", "/var/run/apache2"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("mutexDirs = %q, want %q", got, want)
	}
}

func TestReadOnlyDirs(t *testing.T) {
	dir := t.TempDir()
	lines := []string{
		"(30)Read-only file system: AH00649: could not open transfer log file " + dir + "/access.log.",
		"[core:emerg] AH00020: Configuration Failed, exiting",
		"(30)Read-only file system: AH00091: apache2: could not open error log file /nonexistent/x/error.log.",
	}
	if got := readOnlyDirs(lines, nil); !reflect.DeepEqual(got, []string{dir}) {
		t.Fatalf("readOnlyDirs = %q, want [%s]", got, dir)
	}
	if got := readOnlyDirs(lines, []string{dir}); len(got) != 0 {
		t.Fatalf("readOnlyDirs with %s given = %q, want none", dir, got)
	}
}

func TestCauseLines(t *testing.T) {
	p := server.Profile{Driver: apacheProfile(t).Driver}
	text := `AH00558: apache2: Could not reliably determine the server's fully qualified domain name
[Sun Dec 06 12:53:02.874072 2026] [ssl:warn] [pid 3:tid 3] AH01882: Init: this version of mod_ssl was compiled against a newer library
AH00016: Configuration Failed
[Sun Dec 06 12:53:02.877851 2026] [ssl:emerg] [pid 3:tid 3] AH02565: Certificate and private key localhost:18443:0 from c.pem and k.pem do not match
[Sun Dec 06 12:53:02.877851 2026] [core:error] [pid 3:tid 3] [client 127.0.0.1:1] AH00037: Symbolic link not allowed: /x [ssl:emerg]
(98)Address already in use: AH00072: make_sock: could not bind to address 127.0.0.1:80
`
	got := p.CauseLines(text)
	want := []string{
		"[Sun Dec 06 12:53:02.877851 2026] [ssl:emerg] [pid 3:tid 3] AH02565: Certificate and private key localhost:18443:0 from c.pem and k.pem do not match",
		"(98)Address already in use: AH00072: make_sock: could not bind to address 127.0.0.1:80",
		"AH00558: apache2: Could not reliably determine the server's fully qualified domain name",
		"AH00016: Configuration Failed",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("causeLines =\n%q\nwant\n%q", got, want)
	}
	if !p.HaltsStart(text) {
		t.Error("haltsStart: false, want true (emerg and AH00072)")
	}
	if p.HaltsStart("[Sun Dec 06 12:53:02 2026] [ssl:error] [pid 3] AH02217: ssl_stapling_init_cert: can't retrieve issuer certificate!\nAH00558: no FQDN") {
		t.Error("haltsStart: true for an error and a notice, want false (a server starts after them)")
	}
	access := `127.0.0.1 - - [06/Dec/2026:12:53:02 +0000] "GET /x:emerg] HTTP/1.1" 404 196`
	if p.HaltsStart(access) || len(p.CauseLines(access+"\n"+text)) != len(want) {
		t.Error("an access log line naming :emerg] in its request counts as the server's")
	}
	if got := p.CauseLines("one\ntwo\n"); !reflect.DeepEqual(got, []string{"one", "two"}) {
		t.Errorf("causeLines without a severe line = %q, want the last lines", got)
	}
}

func TestConflicts(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"127.0.0.1:80", "127.0.0.1:80", true},
		{"0.0.0.0:80", "127.0.0.1:80", true},
		{"127.0.0.1:80", "[::]:80", true},
		{"127.0.0.1:80", "127.0.0.2:80", false},
		{"127.0.0.1:80", "127.0.0.1:81", false},
		{"/run/x.sock", "127.0.0.1:80", false},
	} {
		if got := sock.Conflicts(tc.a, tc.b); got != tc.want {
			t.Errorf("conflicts(%s, %s) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestBindAddrs(t *testing.T) {
	got := bindAddrs([]string{"80", "*:8080", "127.0.0.1:9000", "[::]:443", "[::1]:9001", "localhost:81", "/run/php/php8.2-fpm.sock", "unix:/x"})
	want := []string{"0.0.0.0:80", "0.0.0.0:8080", "127.0.0.1:9000", "[::]:443", "[::1]:9001", "/run/php/php8.2-fpm.sock"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("bindAddrs = %q, want %q", got, want)
	}
}

func TestOverlayable(t *testing.T) {
	for dir, ok := range map[string]bool{
		"/run/apache2": true, "/var/log/apache2": true, "/": false, "/dev": false, "/dev/shm": false,
		"/dev/shm/x": false, "/proc/1": false, "/srv/a,b": false, "/srv/a:b": false,
	} {
		if err := overlayable(dir); (err == nil) != ok {
			t.Errorf("overlayable(%q) = %v, want ok %v", dir, err, ok)
		}
	}
}

func TestWritable(t *testing.T) {
	for info, want := range map[string]bool{
		"pos:\t0\nflags:\t02102001\nmnt_id:\t29\n": true,  // O_WRONLY|O_APPEND|O_CREAT|O_CLOEXEC
		"pos:\t0\nflags:\t02000002\n":              true,  // O_RDWR
		"pos:\t0\nflags:\t02100000\n":              false, // O_RDONLY
		"pos:\t0\n":                                false,
		"flags:\tzz\n":                             false,
	} {
		if got := writable(info); got != want {
			t.Errorf("writable(%q) = %v, want %v", info, got, want)
		}
	}
}

// apacheProfile is the built-in apache2 profile.
func apacheProfile(t *testing.T) server.Profile {
	t.Helper()
	p, err := server.LookupProfile("apache2")
	if err != nil {
		t.Fatal(err)
	}
	return p
}
