package ipcguard

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func ExampleDiff() {
	before := Snapshot{Sem: []SemSet{
		{ID: 3, UID: 33, CTime: 100, OTime: 100},
		{ID: 4, UID: 33, CTime: 100, OTime: 100},
	}}
	after := Snapshot{Sem: []SemSet{
		{ID: 4, UID: 33, CTime: 100, OTime: 160},
		{ID: 5, UID: 33, CTime: 150},
	}}
	fmt.Print(Diff(before, after))
	// Output:
	// + sem 5 key 0 (private) uid 33
	// - sem 3 key 0 (private) uid 33
	// ~ sem 4 key 0 (private) uid 33: otime 100 -> 160
}

func TestDiffPosixByInode(t *testing.T) {
	before := Snapshot{Posix: []PosixObject{{Name: "ShM.a", Inode: 1}}}
	after := Snapshot{Posix: []PosixObject{{Name: "ShM.a", Inode: 2}}}
	d := Diff(before, after)
	if len(d.Added) != 1 || len(d.Removed) != 1 || len(d.Changed) != 0 {
		t.Fatalf("a replaced file must show as removed and added, got %+v", d)
	}
	if !Diff(after, after).Empty() {
		t.Fatalf("a snapshot differs from itself")
	}
}

func TestAttribute(t *testing.T) {
	before := Snapshot{Sem: []SemSet{{ID: 3, CTime: 100}}}
	after := Snapshot{Sem: []SemSet{{ID: 3, CTime: 100}, {ID: 9, CTime: 150}}, Posix: []PosixObject{{Name: "x"}}}
	got := Attribute(before, after)
	if len(got) != 1 || got[0] != (SetStamp{Kind: KindSem, ID: 9, CTime: 150}) {
		t.Fatalf("Attribute = %+v, want only sem 9", got)
	}
}

func TestLineageRoundTrip(t *testing.T) {
	dir := t.TempDir()
	l := Lineage{Service: "apache2", Master: ProcKey{PID: 42, StartTicks: 7}, Objects: []SetStamp{{Kind: KindSem, ID: 9, CTime: 150}}}
	if err := SaveLineage(dir, l); err != nil {
		t.Fatal(err)
	}
	got, err := LoadLineages(dir, "apache2")
	if err != nil || len(got) != 1 || got[0].Master != l.Master || got[0].Objects[0] != l.Objects[0] {
		t.Fatalf("LoadLineages = %+v, %v", got, err)
	}
	if err := SaveLineage(dir, Lineage{Service: "../x"}); err == nil {
		t.Fatalf("a service name with a slash was accepted")
	}
	// A symlink planted at the name a writer might use for its temporary
	// file is neither followed nor truncated.
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"apache2.43.json.tmp", ".apache2.43.json.tmp"} {
		if err := os.Symlink(victim, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := SaveLineage(dir, Lineage{Service: "apache2", Master: ProcKey{PID: 43, StartTicks: 8}}); err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(victim); err != nil || string(data) != "precious\n" {
		t.Fatalf("the file a planted symlink names now holds %q (%v)", data, err)
	}
	// The master is gone: the lineage is pruned.
	n, err := PruneLineages(dir, "apache2", table())
	if err != nil || n != 2 {
		t.Fatalf("PruneLineages = %d, %v; want 2", n, err)
	}
}
