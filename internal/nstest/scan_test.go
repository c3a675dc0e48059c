//go:build linux

package nstest

import (
	"strings"
	"testing"
)

func TestScanChild(t *testing.T) {
	out := "=== RUN   TestX\n" +
		"=== RUN   TestX/sub\n" +
		"    x_test.go:9: no apache\n" +
		"--- SKIP: TestX/sub (0.00s)\n" +
		"\x16--- PASS: TestX (0.00s)\n" +
		"PASS\n"
	if r := scanChild(t, strings.NewReader(out), "TestX"); r.status != "PASS" {
		t.Errorf("TestX: %+v", r)
	}
	out = "=== RUN   TestX/sub\n" +
		"--- SKIP: TestX/sub (0.00s)\n" +
		"    x_test.go:9: no apache\n" +
		"--- PASS: TestX (0.00s)\n"
	r := scanChild(t, strings.NewReader(out), "TestX/sub")
	if r.status != "SKIP" || len(r.skipReason) != 1 || r.skipReason[0] != "x_test.go:9: no apache" {
		t.Errorf("TestX/sub: %+v", r)
	}
	if r := scanChild(t, strings.NewReader("testing: warning: no tests to run\nPASS\n"), "TestX"); r.status != "" {
		t.Errorf("no tests: %+v", r)
	}
}
