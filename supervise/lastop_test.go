package supervise

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLastOperationRecords: a record replaces the service's previous one,
// whole, with no temporary file left; records load sorted by service; a
// bad service name is refused, a corrupt record is an error naming it,
// and no directory means no records.
func TestLastOperationRecords(t *testing.T) {
	dir := StateDir(t.TempDir()).LastOperations()
	if ops, err := LoadLastOperations(filepath.Join(dir, "none")); err != nil || len(ops) != 0 {
		t.Fatalf("missing dir: %v, %v", ops, err)
	}
	started := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, op := range []LastOperation{
		{Service: "nginx", Op: "restart", ExitCode: 0, Result: "ok", Started: started, Duration: time.Second},
		{Service: "apache2", Op: "reload", ExitCode: 0, Result: "ok", Started: started, Duration: time.Second},
		{Service: "apache2", Op: "reload", ExitCode: 3, Result: "refused", Error: "config test failed", Started: started.Add(time.Hour), Duration: 2 * time.Second},
	} {
		if err := SaveLastOperation(dir, op); err != nil {
			t.Fatal(err)
		}
	}
	ops, err := LoadLastOperations(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != 2 || ops[0].Service != "apache2" || ops[0].ExitCode != 3 || ops[0].Error != "config test failed" ||
		!ops[0].Started.Equal(started.Add(time.Hour)) || ops[0].Duration != 2*time.Second || ops[1].Service != "nginx" {
		t.Fatalf("loaded %+v", ops)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Fatalf("files left in the record dir: %v", entries)
	}
	if err := SaveLastOperation(dir, LastOperation{Service: "../etc", Op: "stop"}); err == nil || !strings.Contains(err.Error(), "bad service name") {
		t.Fatalf("bad name: %v", err)
	}
	bad := filepath.Join(dir, "broken.json")
	if err := os.WriteFile(bad, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadLastOperations(dir); err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("corrupt record: %v", err)
	}
}
