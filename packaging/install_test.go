package packaging

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/safe-restart/safe-restart/internal/nstest"
)

// installScript runs as PID 1 of private mount, PID, IPC, network and UTS
// namespaces, with $1 the directory for each step's output, $2 the
// package, $3 an empty directory, $4 and $5 the scripts of the steps. It mounts an overlay of this
// machine's root whose upper layer is a tmpfs on $3 (so nothing written
// reaches the machine's files), with its own /run and /tmp and a /dev
// (nodev) of the harmless character devices only. Then it runs
// installSteps, and later aptSteps, chrooted there as PID 1 of a further
// PID namespace with its own /proc (/proc/sys and sysrq-trigger read-only:
// no process it can see has this machine's root): each step's STEP.out,
// STEP.err and STEP.rc land in $1. Between the two it lists the upper
// layer: what installing and purging left behind.
const installScript = "set -u\n" + nstest.MinimalDevScript + `res=$1 deb=$2 w=$3
mount --make-rprivate /
mount -t tmpfs tmpfs "$w"
mkdir "$w/upper" "$w/work" "$w/root"
mount -t overlay -o "lowerdir=/,upperdir=$w/upper,workdir=$w/work" overlay "$w/root" || exit 10
r=$w/root
minimal_dev "$r/dev" nosuid,nodev || exit 10
mount -t tmpfs -o mode=0755 tmpfs "$r/run"
mount -t tmpfs -o mode=1777 tmpfs "$r/tmp"
mkdir "$r/tmp/results"
mount --bind "$res" "$r/tmp/results"
cp "$deb" "$r/tmp/safe-restart.deb"
inside() { chroot "$r" unshare --pid --mount --fork --mount-proc --kill-child sh -c "$1"; }
inside "$4" || exit 11
(cd "$w/upper" && find . -mindepth 1 -printf '%y %p\n') > "$res/left"
inside "$5" || exit 12
`

// stepsPrelude starts installSteps and aptSteps: /proc/sys and
// sysrq-trigger read-only, and step NAME CMD..., which runs CMD without
// the capabilities to mount, make devices, load modules or trace, in a
// clean environment, into /tmp/results/NAME.{out,err,rc}.
const stepsPrelude = `set -u
for p in /proc/sys /proc/sysrq-trigger; do
	[ -e "$p" ] || continue # no sysrq-trigger on a kernel without magic SysRq
	mount --bind "$p" "$p" && mount -o remount,bind,ro "$p" || exit 1
done
step() {
	name=$1
	shift
	setpriv --bounding-set -sys_admin,-mknod,-sys_module,-sys_rawio,-sys_boot,-sys_ptrace,-sys_time \
		env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp TERM=dumb LC_ALL=C.UTF-8 MANWIDTH=100 \
		DEBIAN_FRONTEND=noninteractive "$@" > "/tmp/results/$name.out" 2> "/tmp/results/$name.err"
	echo $? > "/tmp/results/$name.rc"
}
`

// installSteps install the package with dpkg -i, use it, enable the cron
// snippet, remove and purge the package, and take the snippet away again
// (with /etc/cron.d when the step made it).
const installSteps = `bashcomp='. /usr/share/bash-completion/bash_completion
_completion_loader safe-restart
COMP_WORDS=(safe-restart re); COMP_CWORD=1; COMP_LINE="safe-restart re"; COMP_POINT=${#COMP_LINE}
$(complete -p safe-restart | sed -n "s/.* -F \([^ ]*\) .*/\1/p") safe-restart re safe-restart
printf "%s\n" "${COMPREPLY[@]}"'
step install dpkg -i /tmp/safe-restart.deb
step version safe-restart --version
step version-json safe-restart version --json
step man man -P cat --warnings -l /usr/share/man/man1/safe-restart.1.gz
step man-reap man -P cat --warnings -l /usr/share/man/man1/safe-restart-ipc-reap.1.gz
step man-path man -w safe-restart
step bash bash -c "$bashcomp"
step zsh zsh -fc 'autoload -U compinit && compinit -u && print -r -- $_comps[safe-restart]'
step fish fish -c 'complete -C"safe-restart re"'
step statedir stat -c '%a %U %F' /run/safe-restart
made=
if [ ! -d /etc/cron.d ]; then mkdir /etc/cron.d && made=1; fi
step enable-cron cp /usr/share/safe-restart/cron.d/safe-restart /etc/cron.d/safe-restart
step remove dpkg --remove safe-restart
step purge dpkg --purge safe-restart
step statedir-purged test -e /run/safe-restart
step cron-kept grep -c /usr/bin/safe-restart /etc/cron.d/safe-restart
rm -f /etc/cron.d/safe-restart
if [ -n "$made" ]; then rmdir /etc/cron.d; fi
`

// aptSteps install the package the README's way, with apt.
const aptSteps = `step apt-install apt-get install -y /tmp/safe-restart.deb
step apt-version safe-restart --version
`

// TestInstall installs this machine's package as an operator does (dpkg -i,
// then apt-get install ./...deb) into an overlay of this machine's root, in
// private namespaces: safe-restart runs and reports the built version, its
// man pages render without a groff warning, man finds them, bash, zsh
// and fish complete its commands, the state directory is made; removing
// it names the enabled cron snippet and keeps it (the operator's file);
// the purge removes the state directory and leaves no file or directory
// but dpkg's and man-db's records.
func TestInstall(t *testing.T) {
	nstest.RequireBinaries(t, "unshare", "chroot", "setpriv", "dpkg", "apt-get", "man", "bash", "zsh", "fish")
	nstest.RequireRoot(t, "installing a package into an overlay of /")
	deb := debs(t, release(t, "022", nil, "VERSION=v1.2.3"))[runtime.GOARCH]
	if deb == "" {
		t.Skipf("no package for %s: make deb builds amd64 and arm64", runtime.GOARCH)
	}
	res := t.TempDir()
	cmd := exec.Command("unshare", "--mount", "--pid", "--ipc", "--net", "--uts", "--fork", "--kill-child",
		"sh", "-c", installScript, "install", res, deb, t.TempDir(), stepsPrelude+installSteps, stepsPrelude+aptSteps)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("install script: %v\n%s", err, out)
	}
	s := steps{t: t, dir: res}
	s.ok("install")
	commit, _ := exec.Command("git", "-C", repo, "rev-parse", "HEAD").Output()
	s.contains("version", "safe-restart v1.2.3\ncommit:     "+strings.TrimSpace(string(commit)), "build date: 20", "go version: go1.")
	var b struct{ Version, Commit string }
	if err := json.Unmarshal([]byte(s.ok("version-json")), &b); err != nil || b.Version != "v1.2.3" {
		t.Errorf("version --json: %+v, %v", b, err)
	}
	s.contains("man", "EXIT STATUS", "refused before acting")
	s.contains("man-reap", "EXIT STATUS", "every orphan was removed")
	for _, page := range []string{"man", "man-reap"} {
		if e := s.read(page + ".err"); e != "" {
			t.Errorf("man --warnings %s: %s", page, e)
		}
	}
	s.contains("man", "FILES", "/run/safe-restart", "ENVIRONMENT")
	s.contains("man-path", "/usr/share/man/man1/safe-restart.1.gz")
	s.contains("bash", "reload\nrestart\n")
	s.contains("zsh", "_safe-restart")
	s.contains("fish", "reload\t", "restart\t")
	s.contains("statedir", "755 root directory")
	s.ok("enable-cron")
	s.ok("remove")
	if e := s.read("remove.err"); !strings.Contains(e, "/etc/cron.d/safe-restart still runs safe-restart") {
		t.Errorf("dpkg --remove did not name the enabled cron snippet: %q", e)
	}
	s.ok("purge")
	if s.read("statedir-purged.rc") != "1" {
		t.Error("the purge left /run/safe-restart")
	}
	s.contains("cron-kept", "1")
	checkLeftovers(t, s.read("left"))
	s.ok("apt-install")
	s.contains("apt-version", "safe-restart v1.2.3\n")
}

// leftOK are the paths below which an install and a purge may leave
// files: dpkg's records and log, and man-db's index, which dpkg's trigger
// updates.
var leftOK = []string{"./var/lib/dpkg/", "./var/log/", "./var/cache/man/"}

// checkLeftovers fails on what the overlay's upper layer holds (left:
// find's "TYPE PATH" lines) besides leftOK: any file, a whiteout (a file
// of this machine the purge deleted), or a directory this machine has not.
func checkLeftovers(t *testing.T, left string) {
	t.Helper()
	for _, line := range strings.Split(strings.TrimSpace(left), "\n") {
		kind, path, _ := strings.Cut(line, " ")
		if line == "" || hasPrefix(path, leftOK) {
			continue
		}
		if kind == "d" {
			if _, err := os.Stat(strings.TrimPrefix(path, ".")); !errors.Is(err, fs.ErrNotExist) {
				continue // copied up: this machine has it
			}
		}
		t.Errorf("the purge left %s (type %s)", path, kind)
	}
}

func hasPrefix(path string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(path+"/", p) {
			return true
		}
	}
	return false
}

// steps reads the installScript's step results.
type steps struct {
	t   *testing.T
	dir string
}

func (s steps) read(name string) string {
	b, err := os.ReadFile(filepath.Join(s.dir, name))
	if err != nil {
		s.t.Fatalf("step output %s: %v", name, err)
	}
	return strings.TrimSuffix(string(b), "\n")
}

// ok fails the test unless step exited 0, and returns its stdout.
func (s steps) ok(step string) string {
	s.t.Helper()
	if rc := s.read(step + ".rc"); rc != "0" {
		s.t.Fatalf("%s: exit %s\n%s\n%s", step, rc, s.read(step+".out"), s.read(step+".err"))
	}
	return s.read(step + ".out")
}

// contains checks that step exited 0 and printed each of wants.
func (s steps) contains(step string, wants ...string) {
	s.t.Helper()
	out := s.ok(step) + "\n"
	// groff justifies a man page's lines with extra spaces: compare words.
	words := func(v string) string { return strings.Join(strings.Fields(v), " ") }
	for _, w := range wants {
		if !strings.Contains(words(out), words(w)) {
			s.t.Errorf("%s printed %q, want %q in it", step, out, w)
		}
	}
}
