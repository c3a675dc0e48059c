package proc

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// copyFile copies src to dst (mode 0755), through a temporary name renamed
// over dst, as dpkg installs a file.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	tmp := dst + ".new"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}

// TestReplacedCode: a process running a binary and a preloaded library
// from a directory of its own reports nothing replaced; once a new build
// of each is renamed over the old file (a package upgrade), both are
// reported, and its data mappings are not.
func TestReplacedCode(t *testing.T) {
	libms, _ := filepath.Glob("/lib/*/libm.so.6")
	if len(libms) == 0 {
		t.Fatal("no /lib/*/libm.so.6 (glibc's multiarch layout) to preload")
	}
	dir := t.TempDir()
	sleep, lib := filepath.Join(dir, "sleep"), filepath.Join(dir, "libm.so.6")
	copyFile(t, "/bin/sleep", sleep)
	copyFile(t, libms[0], lib)
	cmd := exec.Command(sleep, "60")
	cmd.Env = append(os.Environ(), "LD_PRELOAD="+lib)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	pid := cmd.Process.Pid
	maps := filepath.Join(DefaultRoot, strconv.Itoa(pid), "maps")
	for deadline := time.Now().Add(10 * time.Second); ; {
		if b, _ := os.ReadFile(maps); strings.Contains(string(b), lib) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the library never mapped")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if r, err := ReplacedCode("", pid); err != nil || r.Any() {
		t.Fatalf("before the upgrade: %+v, %v", r, err)
	}
	copyFile(t, "/bin/sleep", sleep)
	copyFile(t, libms[0], lib)
	r, err := ReplacedCode("", pid)
	if err != nil || r.Exe != sleep || !slices.Equal(r.Libraries, []string{lib}) {
		t.Fatalf("after the upgrade: %+v, %v; want exe %s and library %s", r, err, sleep, lib)
	}
}

// TestPseudoFile: what a package installs is a file; anonymous shared
// memory, memfds and SysV segments are not.
func TestPseudoFile(t *testing.T) {
	for path, want := range map[string]bool{
		"/usr/lib/apache2/modules/mod_ssl.so": false, "/dev/zero": true, "/memfd:libffi": true,
		"/SYSV00000000": true, "[anon:jit]": true,
	} {
		if pseudoFile(path) != want {
			t.Errorf("pseudoFile(%q) = %v", path, !want)
		}
	}
}
