package packaging

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/safe-restart/safe-restart/internal/nstest"
)

// repo is the repository's root, where the Makefile is.
const repo = ".."

// release runs make release into a new directory, under umask umask,
// with env added to the environment and the make variables vars, and
// returns the directory.
func release(t *testing.T, umask string, env []string, vars ...string) string {
	t.Helper()
	nstest.RequireBinaries(t, "make", "git", "dpkg-deb", "gzip", "sha256sum")
	dist := t.TempDir()
	cmd := exec.Command("sh", append([]string{"-c", `umask "$1" && shift && exec make "$@"`, "sh", umask,
		"-s", "-C", repo, "release", "DIST=" + dist}, vars...)...)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make release: %v\n%s", err, out)
	}
	return dist
}

// debs returns the packages in dist, by architecture.
func debs(t *testing.T, dist string) map[string]string {
	t.Helper()
	found := map[string]string{}
	paths, _ := filepath.Glob(filepath.Join(dist, "safe-restart_*.deb"))
	for _, p := range paths {
		arch := strings.TrimSuffix(p[strings.LastIndex(p, "_")+1:], ".deb")
		found[arch] = p
	}
	if len(found) != 2 || found["amd64"] == "" || found["arm64"] == "" {
		t.Fatalf("packages in %s: %v, want one for amd64 and one for arm64", dist, found)
	}
	return found
}

// TestRelease: two builds of this commit give the same SHA256SUMS, which
// checks its files, though the second runs in another directory, under
// umask 077, in another time zone and with an empty Go build cache; each
// package holds its architecture's binary and every file the README
// promises; lintian reports nothing (its one override, the static binary,
// is explained in it).
func TestRelease(t *testing.T) {
	twice := [2]string{
		release(t, "022", nil),
		release(t, "077", []string{"TZ=Pacific/Kiritimati", "GOCACHE=" + t.TempDir()}),
	}
	sums := [2][]byte{}
	for i, dist := range twice {
		var err error
		if sums[i], err = os.ReadFile(filepath.Join(dist, "SHA256SUMS")); err != nil {
			t.Fatal(err)
		}
		check := exec.Command("sha256sum", "--check", "--strict", "SHA256SUMS")
		check.Dir = dist
		if out, err := check.CombinedOutput(); err != nil {
			t.Fatalf("sha256sum --check in %s: %v\n%s", dist, err, out)
		}
	}
	if !bytes.Equal(sums[0], sums[1]) || bytes.Count(sums[0], []byte("\n")) != 4 {
		t.Fatalf("two builds of one commit differ (or miss files):\n%s\n%s", sums[0], sums[1])
	}
	for arch, deb := range debs(t, twice[0]) {
		checkDeb(t, arch, deb)
	}
	machines := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}
	bins, _ := filepath.Glob(filepath.Join(twice[0], "safe-restart_v*_linux_*"))
	for _, b := range bins {
		f, err := elf.Open(b)
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		want := machines[b[strings.LastIndex(b, "_")+1:]]
		if f.Machine != want {
			t.Errorf("%s is for %v, want %v", b, f.Machine, want)
		}
		f.Close()
	}
}

// packageFiles are files the package must hold.
var packageFiles = []string{
	"./usr/bin/safe-restart",
	"./usr/share/man/man1/safe-restart.1.gz",
	"./usr/share/man/man1/safe-restart-reload.1.gz",
	"./usr/share/man/man1/safe-restart-ipc-reap.1.gz",
	"./usr/share/bash-completion/completions/safe-restart",
	"./usr/share/zsh/vendor-completions/_safe-restart",
	"./usr/share/fish/vendor_completions.d/safe-restart.fish",
	"./usr/lib/tmpfiles.d/safe-restart.conf",
	"./usr/share/safe-restart/cron.d/safe-restart",
	"./usr/share/safe-restart/logrotate.d/apache2",
	"./usr/share/safe-restart/systemd/apache2.service.d/safe-restart.conf",
	"./usr/share/doc/safe-restart/examples/cron/safe-restart",
	"./usr/share/doc/safe-restart/README.Debian.gz",
	"./usr/share/doc/safe-restart/copyright",
	"./usr/share/doc/safe-restart/changelog.gz",
}

// checkDeb checks one package's architecture, files and lintian's verdict.
func checkDeb(t *testing.T, arch, deb string) {
	t.Helper()
	field, err := exec.Command("dpkg-deb", "--field", deb, "Architecture").Output()
	if err != nil || strings.TrimSpace(string(field)) != arch {
		t.Errorf("%s: Architecture %q (%v), want %s", deb, field, err, arch)
	}
	list, err := exec.Command("dpkg-deb", "--contents", deb).Output()
	if err != nil {
		t.Fatalf("dpkg-deb --contents %s: %v", deb, err)
	}
	for _, f := range packageFiles {
		if !bytes.Contains(list, []byte(" "+f+"\n")) {
			t.Errorf("%s holds no %s", deb, f)
		}
	}
	nstest.RequireBinaries(t, "lintian")
	out, err := exec.Command("lintian", "--fail-on", "error,warning", deb).CombinedOutput()
	for _, line := range strings.Split(string(out), "\n") {
		if line != "" && !strings.Contains(line, "running with root privileges") {
			t.Errorf("lintian %s: %s", filepath.Base(deb), line)
		}
	}
	if err != nil {
		t.Errorf("lintian %s: %v", filepath.Base(deb), err)
	}
}
