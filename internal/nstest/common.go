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

// skipOrFail skips the test, or fails it when CI=true.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format+" (CI=true: failing instead of skipping)", args...)
	}
	t.Skipf(format, args...)
}
