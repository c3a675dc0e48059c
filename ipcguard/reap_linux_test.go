//go:build linux

package ipcguard

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/safe-restart/safe-restart/internal/nstest"
	"github.com/safe-restart/safe-restart/internal/semtest"
)

// verdicts maps semid -> verdict for the sets in js.
func verdicts(js []Judgement) map[int]Verdict {
	m := map[int]Verdict{}
	for _, j := range js {
		if j.Kind == KindSem {
			m[j.ID] = j.Verdict
		}
	}
	return m
}

func semIDs(t *testing.T) map[int]bool {
	t.Helper()
	sets, err := ReadSemTable("/proc")
	if err != nil {
		t.Fatal(err)
	}
	m := map[int]bool{}
	for _, s := range sets {
		m[s.ID] = true
	}
	return m
}

func inspectApache(t *testing.T) Report {
	t.Helper()
	sig := ApacheSignature("apache2", 33, "/usr/sbin/apache2")
	r, err := Inspect(context.Background(), InspectOptions{Signature: &sig, Window: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestReapRealSets: dead sets are reaped; a held set, a waited-on set, sets
// of another uid, a php-style set, and a set operated between proof and
// removal are not. The common one-liner removes the live ones.
func TestReapRealSets(t *testing.T) {
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	dead := semtest.DeadSets(t, "5 33 1")
	held := semtest.DeadSets(t, "1 33 1")[0]
	semtest.Holder(t, held)
	waited := semtest.DeadSets(t, "1 33 0")[0]
	semtest.Waiter(t, waited)
	otherUID := semtest.DeadSets(t, "1 1000 1")[0]
	php := semtest.DeadSets(t, "1 33 1 305419896 3")[0] // key 0x12345678, 3 semaphores
	racer := semtest.DeadSets(t, "1 33 1")[0]
	waitFor(t, 5*time.Second, "the waiter to block", func() bool {
		sems, err := semRead(waited, 1)
		return err == nil && sems[0].NCnt == 1
	})

	r := inspectApache(t)
	got := verdicts(r.Judgements)
	want := map[int]Verdict{held: Live, waited: Live, otherUID: Foreign, php: Foreign, racer: Orphan}
	for _, id := range dead {
		want[id] = Orphan
	}
	for id, v := range want {
		if got[id] != v {
			t.Errorf("set %d: verdict %s, want %s", id, got[id], v)
		}
	}
	// The racer is operated on after its proof: it must be left in place.
	semtest.Operate(t, racer)
	reaper := Reaper{Log: zerolog.New(zerolog.NewTestWriter(t))}
	outs, err := reaper.Reap(context.Background(), r.Judgements)
	if err != nil {
		t.Fatalf("Reap: %v", err)
	}
	left := semIDs(t)
	for _, id := range dead {
		if left[id] {
			t.Errorf("dead set %d was not reaped", id)
		}
	}
	for _, id := range []int{held, waited, otherUID, php, racer} {
		if !left[id] {
			t.Errorf("set %d was removed (verdict %s)", id, got[id])
		}
	}
	for _, o := range outs {
		if o.ID == racer && !strings.Contains(o.Skipped, ErrChanged.Error()) {
			t.Errorf("racer outcome %+v, want skipped as changed", o)
		}
	}

	// The usual clean-up one-liner removes the live sets too.
	oneLiner := `ipcs -s | awk '/www-data/ {print $2}' | xargs -r -n1 ipcrm -s`
	if out, err := exec.Command("sh", "-c", oneLiner).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", oneLiner, err, out)
	}
	left = semIDs(t)
	if left[held] || left[waited] {
		t.Errorf("the one-liner left the live sets (held %v, waited %v): the comparison proves nothing", left[held], left[waited])
	}
}

// TestReapDryRunChangesNothing: a dry run reports the plan and removes
// nothing.
func TestReapDryRunChangesNothing(t *testing.T) {
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	dead := semtest.DeadSets(t, "3 33 1")
	r := inspectApache(t)
	outs, err := (&Reaper{DryRun: true}).Reap(context.Background(), r.Judgements)
	if err != nil || len(outs) != 3 {
		t.Fatalf("dry run: %d outcomes, %v; want 3", len(outs), err)
	}
	left := semIDs(t)
	for _, id := range dead {
		if !left[id] {
			t.Errorf("dry run removed set %d", id)
		}
	}
}

// TestReapGoneSet: a set removed by someone else between proof and removal
// is skipped as gone, not an error.
func TestReapGoneSet(t *testing.T) {
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	id := semtest.DeadSets(t, "1 33 1")[0]
	r := inspectApache(t)
	if err := semRemove(id); err != nil {
		t.Fatal(err)
	}
	outs, err := (&Reaper{}).Reap(context.Background(), r.Judgements)
	if err != nil || len(outs) != 1 || !strings.Contains(outs[0].Skipped, ErrGone.Error()) {
		t.Fatalf("outcomes %+v, err %v; want one skipped as gone", outs, err)
	}
}

// TestStatSemTableMatchesProc: the semctl(SEM_STAT_ANY) inventory carries
// exactly the rows of /proc/sysvipc/sem.
func TestStatSemTableMatchesProc(t *testing.T) {
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	semtest.DeadSets(t, "3 33 1")
	semtest.DeadSets(t, "1 1000 0 305419896 3")
	removed := semtest.DeadSets(t, "1 33 1")[0] // leaves a hole in the indexes
	if err := semRemove(removed); err != nil {
		t.Fatal(err)
	}
	semtest.DeadSets(t, "1 0 1 -2023406815 2") // a key that prints negative
	fromProc, err := ReadSemTable("/proc")
	if err != nil {
		t.Fatal(err)
	}
	fromStat, ok, err := statSemTable()
	if !ok || err != nil {
		t.Fatalf("statSemTable: ok %v, %v", ok, err)
	}
	if !reflect.DeepEqual(fromProc, fromStat) {
		t.Fatalf("SEM_STAT_ANY and /proc differ:\nproc %+v\nstat %+v", fromProc, fromStat)
	}
}

// TestSemHeadroom: the kernel's own count of sets in use, against SEMMNI.
func TestSemHeadroom(t *testing.T) {
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	semtest.DeadSets(t, "5 33 1")
	lim, err := ReadLimits("/proc")
	if err != nil {
		t.Fatal(err)
	}
	inUse, limit, err := SemHeadroom(Source{})
	if err != nil || inUse != 5 || limit != lim.SEMMNI {
		t.Fatalf("SemHeadroom = %d of %d, %v; want 5 of %d", inUse, limit, err, lim.SEMMNI)
	}
}

// TestReapShmMsgPosix: real SysV segments and queues and /dev/shm files
// (nstest mounts a private tmpfs there), judged by a signature that claims
// them and reaped through shmctl, msgctl and unlink.
func TestReapShmMsgPosix(t *testing.T) {
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	deadShm := semtest.Made(t, "make-shm", "4096")[0]
	attachedShm := semtest.Made(t, "make-shm", "4096")[0]
	addr, err := unix.SysvShmAttach(attachedShm, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.SysvShmDetach(addr)
	emptyMsg := semtest.Made(t, "make-msg", "0")[0]
	fullMsg := semtest.Made(t, "make-msg", "2")[0]
	for _, name := range []string{"svc.dead", "svc.open", "other.dead"} {
		if err := os.WriteFile("/dev/shm/"+name, make([]byte, 4096), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.OpenFile("/dev/shm/svc.open", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	sig := Signature{Service: "svc", Kinds: []Kind{KindShm, KindMsg, KindPosix}, Key: Any, NSems: Any, Mode: 0o600,
		UID: 0, CUID: Any, Exe: "/nonexistent/svc", PosixGlob: "svc.*"}
	r, err := Inspect(context.Background(), InspectOptions{Signature: &sig, Window: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Verdict{
		fmt.Sprint("shm ", deadShm): Orphan, fmt.Sprint("shm ", attachedShm): Live,
		fmt.Sprint("msg ", emptyMsg): Orphan, fmt.Sprint("msg ", fullMsg): Unknown,
		"posix svc.dead": Orphan, "posix svc.open": Live, "posix other.dead": Foreign,
	}
	got := map[string]Verdict{}
	for _, j := range r.Judgements {
		k := fmt.Sprint(j.Kind, " ", j.ID)
		if j.Kind == KindPosix {
			k = "posix " + j.Name
		}
		got[k] = j.Verdict
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("verdicts %v, want %v", got, want)
	}
	outs, err := (&Reaper{}).Reap(context.Background(), r.Judgements)
	if err != nil || len(outs) != 3 {
		t.Fatalf("Reap: %+v, %v", outs, err)
	}
	for _, o := range outs {
		if !o.Removed {
			t.Errorf("%s %d %s not removed: %s", o.Kind, o.ID, o.Name, o.Skipped)
		}
	}
	after, err := Take(context.Background(), Source{})
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Shm) != 1 || after.Shm[0].ID != attachedShm || len(after.Msg) != 1 || after.Msg[0].ID != fullMsg || len(after.Posix) != 2 {
		t.Fatalf("left: shm %+v msg %+v posix %+v", after.Shm, after.Msg, after.Posix)
	}
}
