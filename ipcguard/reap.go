package ipcguard

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/rs/zerolog"
)

// Reaper removes objects judged orphan, each only after checking again,
// right before removal, that it is unchanged since its proof (README.md
// invariant 4, condition 5). The zero value is usable: it removes, reads
// the host's /dev/shm and logs nothing.
type Reaper struct {
	DryRun bool           // log the plan, remove nothing
	Source Source         // where POSIX objects are re-checked
	Log    zerolog.Logger // one event per object; zero value logs nothing
}

// CountRemoved returns how many of outs were removed.
func CountRemoved(outs []Outcome) int {
	n := 0
	for _, o := range outs {
		if o.Removed {
			n++
		}
	}
	return n
}

// Outcome is what happened to one judged object.
type Outcome struct {
	Judgement
	Removed bool   `json:"removed"`
	Skipped string `json:"skipped,omitempty"` // why it was left: changed since its proof, or gone
	Error   string `json:"error,omitempty"`   // why its removal failed
}

// Reap removes every Orphan in js and returns an Outcome for each of them,
// in order; other verdicts are ignored. An object that vanished, changed,
// or gained a user since its proof is skipped (its Outcome says why), which
// is not an error. The error reports the first removal that failed for
// another reason; Reap goes on with the rest. With thousands of orphans the
// SysV work is spread over a few goroutines; each object is still
// re-checked right before its own removal, and logged once. POSIX objects
// go last, after one fresh scan of every process's maps and fds.
func (r *Reaper) Reap(ctx context.Context, js []Judgement) ([]Outcome, error) {
	var sysv, posix []int // indexes into out
	var out []Outcome
	for i := range js {
		if js[i].Verdict != Orphan {
			continue
		}
		if js[i].Kind == KindPosix {
			posix = append(posix, len(out))
		} else {
			sysv = append(sysv, len(out))
		}
		out = append(out, Outcome{Judgement: js[i]})
	}
	errs := make([]error, len(out))
	forEach(len(sysv), func(k int) {
		i := sysv[k]
		errs[i] = r.reapLogged(ctx, &out[i], nil)
	})
	if len(posix) > 0 && ctx.Err() == nil {
		// Holders come from a scan of every process, so it is done once,
		// right before the POSIX removals, not once per object.
		fresh, err := r.freshPosix()
		if err != nil {
			return out, err
		}
		for _, i := range posix {
			errs[i] = r.reapLogged(ctx, &out[i], fresh)
		}
	}
	if err := ctx.Err(); err != nil {
		return out, err
	}
	return out, firstErr(errs)
}

func firstErr(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// reapLogged reaps one orphan, records and logs its outcome in o. Only
// failures other than a vanished or changed object are returned.
func (r *Reaper) reapLogged(ctx context.Context, o *Outcome, fresh map[string]PosixObject) error {
	if err := ctx.Err(); err != nil {
		o.Skipped = "cancelled"
		return err
	}
	err := r.reapOne(&o.Judgement, fresh)
	switch {
	case err == nil:
		o.Removed = !r.DryRun
	case errors.Is(err, ErrChanged) || errors.Is(err, ErrGone):
		o.Skipped, err = err.Error(), nil
	default:
		o.Error = err.Error()
	}
	r.logOutcome(*o)
	return err
}

// reapOne re-checks one object against its proof and removes it.
func (r *Reaper) reapOne(j *Judgement, fresh map[string]PosixObject) error {
	var now stamp
	var inUse bool
	var err error
	switch j.Kind {
	case KindSem:
		now, inUse, err = semStampNow(j.ID)
	case KindShm:
		now, inUse, err = shmStamp(j.ID)
	case KindMsg:
		now, inUse, err = msgStamp(j.ID)
	case KindPosix:
		return r.reapPosix(j, fresh)
	default:
		return fmt.Errorf("reap %s %d: unknown kind", j.Kind, j.ID)
	}
	if err != nil {
		if isGone(err) {
			return fmt.Errorf("%s %d: %w", j.Kind, j.ID, ErrGone)
		}
		return fmt.Errorf("re-check %s %d: %w", j.Kind, j.ID, err)
	}
	if inUse || now != j.seen {
		return fmt.Errorf("%s %d: %w (operated on, or waited on, after the proof)", j.Kind, j.ID, ErrChanged)
	}
	if r.DryRun {
		return nil
	}
	return removeSysV(j)
}

func removeSysV(j *Judgement) error {
	var err error
	switch j.Kind {
	case KindSem:
		err = semRemove(j.ID)
	case KindShm:
		err = shmRemove(j.ID)
	case KindMsg:
		err = msgRemove(j.ID)
	}
	if err != nil && isGone(err) {
		return fmt.Errorf("%s %d: %w", j.Kind, j.ID, ErrGone)
	}
	if err != nil {
		return fmt.Errorf("remove %s %d: %w", j.Kind, j.ID, err)
	}
	return nil
}

// freshPosix re-reads /dev/shm and its holders.
func (r *Reaper) freshPosix() (map[string]PosixObject, error) {
	objs, err := ReadPosix(r.Source.shmDir(), r.Source.procRoot())
	if err != nil {
		return nil, fmt.Errorf("re-check /dev/shm: %w", err)
	}
	m := make(map[string]PosixObject, len(objs))
	for _, o := range objs {
		m[o.Name] = o
	}
	return m, nil
}

func (r *Reaper) reapPosix(j *Judgement, fresh map[string]PosixObject) error {
	o, ok := fresh[j.Name]
	if !ok {
		return fmt.Errorf("posix %s: %w", j.Name, ErrGone)
	}
	now := stamp{ctime: o.CTimeNs, otime: o.MTimeNs, uid: o.UID, mode: o.Mode, inode: o.Inode, dev: o.Dev}
	if len(o.Holders) > 0 || now != j.seen {
		return fmt.Errorf("posix %s: %w (replaced, modified or opened after the proof)", j.Name, ErrChanged)
	}
	if r.DryRun {
		return nil
	}
	path := filepath.Join(r.Source.shmDir(), j.Name)
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil || st.Ino != o.Inode {
		return fmt.Errorf("posix %s: %w (replaced after the proof)", j.Name, ErrChanged)
	}
	if err := os.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("posix %s: %w", j.Name, ErrGone)
		}
		return fmt.Errorf("remove posix %s: %w", j.Name, err)
	}
	return nil
}

func (r *Reaper) logOutcome(o Outcome) {
	var ev *zerolog.Event
	switch {
	case o.Error != "":
		ev = r.Log.Warn().Str("error", o.Error)
	case o.Skipped != "":
		ev = r.Log.Warn().Str("skipped", o.Skipped)
	case r.DryRun:
		ev = r.Log.Debug() // a plan, not an action: callers print it
	default:
		ev = r.Log.Info()
	}
	ev = ev.Str("kind", string(o.Kind)).Int32("key", o.Key).Bool("dry_run", r.DryRun).Strs("proof", o.Proof)
	if o.Kind == KindPosix {
		ev = ev.Str("name", o.Name)
	} else {
		ev = ev.Int("id", o.ID)
	}
	ev.Msg(outcomeMsg(o, r.DryRun))
}

func outcomeMsg(o Outcome, dryRun bool) string {
	switch {
	case o.Error != "":
		return "failed to remove " + kindNoun(o.Kind)
	case o.Skipped != "":
		return "left " + kindNoun(o.Kind) + " in place"
	case dryRun:
		return "would reap " + kindNoun(o.Kind)
	}
	return "reaped " + kindNoun(o.Kind)
}

func kindNoun(k Kind) string {
	switch k {
	case KindSem:
		return "semaphore set"
	case KindShm:
		return "shared memory segment"
	case KindMsg:
		return "message queue"
	}
	return "POSIX object"
}
