package nstest

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// RunPattern returns the -test.run pattern that selects exactly the test
// named name (as t.Name() spells it) and its subtests: one anchored, quoted
// regular expression per "/"-separated level, e.g. ^Top$/^Sub$.
func RunPattern(name string) string {
	elems := strings.Split(name, "/")
	for i, e := range elems {
		elems[i] = "^" + regexp.QuoteMeta(e) + "$"
	}
	return strings.Join(elems, "/")
}

// MinimalDevScript defines the shell function minimal_dev DIR OPTIONS: a
// tmpfs on DIR (mode 0755 and OPTIONS, e.g. "nosuid,nodev") holding bind
// mounts of this machine's null, zero, full, random, urandom and tty and
// the fd, stdin, stdout and stderr links into /proc/self/fd: the /dev of a
// private root, which reaches no disk and no other device.
const MinimalDevScript = `minimal_dev() {
	mount -t tmpfs -o "mode=0755,$2" tmpfs "$1" || return
	for n in null zero full random urandom tty; do
		: > "$1/$n" && mount --bind "/dev/$n" "$1/$n" || return
	done
	ln -s /proc/self/fd "$1/fd" && ln -s /proc/self/fd/0 "$1/stdin" &&
		ln -s /proc/self/fd/1 "$1/stdout" && ln -s /proc/self/fd/2 "$1/stderr"
}
`

// RequireRoot skips the test unless it runs as root (what, e.g. "creating
// namespaces", is what needs it); with CI=true it fails the test instead.
func RequireRoot(t *testing.T, what string) {
	t.Helper()
	if euid := os.Geteuid(); euid != 0 {
		skipOrFail(t, "%s needs root, euid is %d", what, euid)
	}
}

// skipOrFail skips the test, or fails it when CI=true.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format+" (CI=true: failing instead of skipping)", args...)
	}
	t.Skipf(format, args...)
}
