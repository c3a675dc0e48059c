package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/safe-restart/safe-restart/internal/nginxtest"
	"github.com/safe-restart/safe-restart/internal/nstest"
	"github.com/safe-restart/safe-restart/internal/prober"
	"github.com/safe-restart/safe-restart/supervise"
	"github.com/safe-restart/safe-restart/supervise/verify"
)

// TestReceiptAgreesWithProber: a real nginx reloaded, then restarted
// without the handoff (its listeners close: connections are refused until
// the new master listens), each under the benchmark's kind of prober run
// by the test. The receipt of each, in the JSON report, on the console and
// in the last-operation record, agrees with that prober: no refusal or
// reset for the reload, refusals for the plain restart, and longest gaps
// within 50 ms or half of each other.
func TestReceiptAgreesWithProber(t *testing.T) {
	nstest.RequireBinaries(t, "nginx")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	srv := nginxtest.Start(t, nginxtest.Options{})
	if err := os.WriteFile(filepath.Join(srv.Dir, "html", "big"), make([]byte, 64<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	args := []string{"nginx", "--conf", srv.ConfPath, "--state-dir", state}
	for _, tc := range []struct {
		op    []string
		clean bool
	}{
		{[]string{"reload"}, true},
		{[]string{"restart", "--no-handoff", "--no-overlap", "--graceful-timeout", "300ms"}, false},
	} {
		if !tc.clean {
			slowClient(t, srv.Addr)
		}
		p := prober.Start(func() string { return prober.GET(srv.Addr, "/") })
		code, out, errOut := runCLI(t, append(append(tc.op, args...), "--json")...)
		seen := p.Stop()
		var rep struct {
			Receipt *verify.Receipt `json:"receipt"`
		}
		if err := json.Unmarshal([]byte(out), &rep); err != nil || code != exitOK || rep.Receipt == nil {
			t.Fatalf("%v: exit %d, %v\n%s\n%s", tc.op, code, err, out, errOut)
		}
		r := *rep.Receipt
		t.Logf("%v: receipt %+v; prober %+v", tc.op, r, seen)
		if r.Answered == 0 || r.Probes != r.Answered+r.Refused+r.Reset+r.Failed || r.Verified <= 0 {
			t.Errorf("%v: receipt does not add up: %+v", tc.op, r)
		}
		if tc.clean != (r.Refused == 0 && r.Reset == 0) || tc.clean != (seen.Refused == 0 && seen.Reset == 0) {
			t.Errorf("%v: refusals and resets: receipt %d and %d, prober %d and %d; want none: %v",
				tc.op, r.Refused, r.Reset, seen.Refused, seen.Reset, tc.clean)
		}
		if d := (r.LongestGap - seen.Gap).Abs(); d > max(50*time.Millisecond, max(r.LongestGap, seen.Gap)/2) {
			t.Errorf("%v: longest gap %s by the receipt, %s by the prober", tc.op, r.LongestGap, seen.Gap)
		}
		ops, err := supervise.LoadLastOperations(supervise.StateDir(state).LastOperations())
		if err != nil || len(ops) != 1 || ops[0].Receipt == nil || !reflect.DeepEqual(*ops[0].Receipt, r) {
			t.Errorf("%v: last operation %+v, %v; want the receipt", tc.op, ops, err)
		}
	}
	// On the console, and off with --no-receipt.
	code, out, errOut := runCLI(t, append([]string{"reload"}, args...)...)
	if code != exitOK || !strings.Contains(out, "receipt: ") || !strings.Contains(out, " 0 refused, 0 reset, 0 failed") {
		t.Fatalf("reload: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, append([]string{"reload", "--no-receipt"}, args...)...)
	if code != exitOK || strings.Contains(out, "receipt") {
		t.Fatalf("reload --no-receipt: exit %d\n%s\n%s", code, out, errOut)
	}
}
