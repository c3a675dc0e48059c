package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/safe-restart/safe-restart/internal/nstest"
)

// module is the module path go install names.
const module = "github.com/safe-restart/safe-restart"

// TestGoInstall: the README's go install MODULE/cmd/safe-restart@VERSION,
// against a module proxy (a directory) that serves this commit as v1.2.3,
// with the dependencies from this machine's module cache (checked against
// the module's go.sum; GOSUMDB is off: this module is not in it, and the
// test must not need the network) and a module cache of its own, builds a safe-restart whose --version reports v1.2.3.
func TestGoInstall(t *testing.T) {
	nstest.RequireBinaries(t, "go", "git")
	goenv := func(name string) string {
		out, err := exec.Command("go", "env", name).Output()
		if err != nil {
			t.Fatalf("go env %s: %v", name, err)
		}
		return strings.TrimSpace(string(out))
	}
	downloads := filepath.Join(goenv("GOMODCACHE"), "cache", "download")
	proxy, tmp := t.TempDir(), t.TempDir()
	at := filepath.Join(proxy, module, "@v")
	if err := os.MkdirAll(at, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"list": "v1.2.3\n", "v1.2.3.info": `{"Version":"v1.2.3","Time":"2026-12-06T00:00:00Z"}`}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(at, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git := func(args ...string) []byte {
		out, err := exec.Command("git", append([]string{"-C", repo}, args...)...).Output()
		if err != nil {
			t.Fatalf("git %s: %v", strings.Join(args, " "), err)
		}
		return out
	}
	if err := os.WriteFile(filepath.Join(at, "v1.2.3.mod"), git("show", "HEAD:go.mod"), 0o644); err != nil {
		t.Fatal(err)
	}
	// This commit as a module zip: its files below MODULE@VERSION/.
	git("archive", "--format=zip", "--prefix="+module+"@v1.2.3/", "--output="+filepath.Join(at, "v1.2.3.zip"), "HEAD")

	bin := filepath.Join(tmp, "bin")
	install := exec.Command("go", "install", module+"/cmd/safe-restart@v1.2.3")
	install.Dir = tmp
	install.Env = append(os.Environ(), "GOPROXY=file://"+proxy+",file://"+downloads, "GOSUMDB=off", "GOMODCACHE="+filepath.Join(tmp, "mod"),
		"GOFLAGS=-modcacherw", "GOBIN="+bin, "GOTOOLCHAIN=local", "GOWORK=off")
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("go install: %v\n%s", err, out)
	}
	out, err := exec.Command(filepath.Join(bin, "safe-restart"), "--version").Output()
	if err != nil || !strings.HasPrefix(string(out), "safe-restart v1.2.3\n") {
		t.Fatalf("the installed safe-restart --version: %q, %v", out, err)
	}
}
