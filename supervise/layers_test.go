package supervise

import (
	"errors"
	"go/build"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// layers is the import rule of ARCHITECTURE.md: a package imports only
// packages of a lower layer. Every package under supervise must be here.
var layers = map[string]int{
	"ipcguard":             0,
	"internal/atomicfile":  -1,
	"supervise/proc":       1,
	"supervise/sock":       2,
	"supervise/server":     3,
	"supervise/growth":     3,
	"supervise/verify":     4,
	"supervise/generation": 4,
	"supervise/systemd":    4,
	"supervise/trial":      5,
	"supervise":            6,
	"supervise/run":        7,
	"supervise/doctor":     7,
	"supervise/metrics":    7,
}

// TestLayers: no package under supervise (nor ipcguard) imports one of
// its own layer or above, on Linux and elsewhere (the _other files), and
// no package under supervise is missing from the table.
func TestLayers(t *testing.T) {
	const module = "github.com/safe-restart/safe-restart/"
	root := ".."
	dirs := []string{"ipcguard", "internal/atomicfile"}
	if err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() || d.Name() == "testdata" {
			return err
		}
		dirs = append(dirs, filepath.Join("supervise", path))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, goos := range []string{"linux", "freebsd"} {
		ctx := build.Default
		ctx.GOOS = goos
		for _, dir := range dirs {
			pkg, err := ctx.ImportDir(filepath.Join(root, dir), 0)
			var noGo *build.NoGoError
			if errors.As(err, &noGo) {
				continue
			}
			if err != nil {
				t.Fatalf("%s: %v", dir, err)
			}
			own, ok := layers[dir]
			if !ok {
				t.Errorf("%s is in no layer: add it to the table and to ARCHITECTURE.md", dir)
				continue
			}
			for _, imp := range pkg.Imports {
				rel, ours := strings.CutPrefix(imp, module)
				if !ours {
					continue
				}
				if l, ok := layers[rel]; !ok || l >= own {
					t.Errorf("%s (%s, layer %d) imports %s (layer %d, known %v): imports point down only", dir, goos, own, rel, l, ok)
				}
			}
		}
	}
}
