package trial

import (
	"reflect"
	"testing"

	"github.com/safe-restart/safe-restart/supervise/server"
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
