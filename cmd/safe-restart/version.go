package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"sync"

	"github.com/spf13/cobra"
)

// Stamped at link time by the Makefile (-ldflags "-X main.version=...");
// empty in a plain go build or go install, where the module's build info
// answers (see resolveBuild).
var (
	version   string
	commit    string
	buildDate string
)

// buildInfo says which safe-restart this is: what --version and version
// print, what every JSON object report carries under "safe_restart", and the
// labels of the safe_restart_build_info metric.
type buildInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	BuildDate string `json:"build_date"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
}

// unknown is a build fact that neither the stamp nor the build info holds.
const unknown = "unknown"

// build is this binary's buildInfo, resolved once.
var build = sync.OnceValue(func() buildInfo {
	bi, _ := debug.ReadBuildInfo()
	return resolveBuild(bi, version, commit, buildDate)
})

// resolveBuild combines the link-time stamp with the module's build info
// bi (nil when the binary has none): a stamped value wins; otherwise the
// version is the main module's (v1.2.0 from go install ...@v1.2.0,
// "(devel)" from a checkout), the commit and date are the VCS stamp's
// vcs.revision ("+dirty" appended for a modified tree) and vcs.time, and
// what neither says is "unknown".
func resolveBuild(bi *debug.BuildInfo, version, commit, date string) buildInfo {
	b := buildInfo{GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	var modVersion, revision, vcsTime string
	if bi != nil {
		modVersion = bi.Main.Version
		vcs := map[string]string{}
		for _, s := range bi.Settings {
			vcs[s.Key] = s.Value
		}
		revision, vcsTime = vcs["vcs.revision"], vcs["vcs.time"]
		if revision != "" && vcs["vcs.modified"] == "true" {
			revision += "+dirty"
		}
	}
	b.Version = cmp.Or(version, modVersion, unknown)
	b.Commit = cmp.Or(commit, revision, unknown)
	b.BuildDate = cmp.Or(date, vcsTime, unknown)
	return b
}

// String is what --version prints.
func (b buildInfo) String() string {
	return fmt.Sprintf("safe-restart %s\ncommit:     %s\nbuild date: %s\ngo version: %s %s\n",
		b.Version, b.Commit, b.BuildDate, b.GoVersion, b.Platform)
}

// labels are b as the safe_restart_build_info metric's labels.
func (b buildInfo) labels() map[string]string {
	return map[string]string{"version": b.Version, "commit": b.Commit, "build_date": b.BuildDate, "go_version": b.GoVersion}
}

func newVersionCmd(d *deps) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "version",
		Short: "Print safe-restart's version, commit, build date and Go version",
		Long: `Version prints which safe-restart this is: its version (the release, or the
module version go install built), the commit it was built from, the build
date and the Go version. Quote it in bug reports. safe-restart --version
prints the same; every --json report that is an object (all but ipc reap's
list of outcomes) carries it under "safe_restart", and safe-restart metrics
exports it as safe_restart_build_info.`,
		Example: `  safe-restart version
  safe-restart version --json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if asJSON {
				return writeJSON(d.stdout, build())
			}
			_, err := io.WriteString(d.stdout, build().String())
			return err
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the build facts as JSON")
	return c
}

// writeJSON writes v as indented JSON. An object (every report) gets this
// binary's buildInfo as its first member, "safe_restart"; other values are
// written as they are.
func writeJSON(w io.Writer, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode JSON: %w", err)
	}
	if _, isBuild := v.(buildInfo); !isBuild && len(raw) > 1 && raw[0] == '{' {
		raw = withBuild(raw)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, raw, "", "  "); err != nil {
		return fmt.Errorf("encode JSON: %w", err)
	}
	out.WriteByte('\n')
	_, err = out.WriteTo(w)
	return err
}

// withBuild returns the JSON object obj with "safe_restart" (build()) as
// its first member.
func withBuild(obj []byte) []byte {
	b, _ := json.Marshal(build()) // strings only: cannot fail
	out := append([]byte(`{"safe_restart":`), b...)
	if string(obj) != "{}" {
		out = append(out, ',')
	}
	return append(out, obj[1:]...)
}
