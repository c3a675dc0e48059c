package ipcguard

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Change is one object that differs between two snapshots.
type Change struct {
	Kind  Kind   `json:"kind"`
	ID    int    `json:"id"`             // SysV id
	Name  string `json:"name,omitempty"` // /dev/shm name
	Key   int32  `json:"key"`            // SysV key
	UID   uint32 `json:"uid"`            // owner uid
	CTime int64  `json:"ctime"`          // creation (or last IPC_SET) time, Unix seconds
	// What lists the fields that changed, as "field old -> new" (Changed only).
	What []string `json:"what,omitempty"`
}

// SnapshotDiff is what happened between two snapshots. SysV objects are
// matched by kind and id, POSIX objects by name and inode. Each list is
// sorted by kind, then id or name.
type SnapshotDiff struct {
	Added   []Change `json:"added"`
	Removed []Change `json:"removed"`
	Changed []Change `json:"changed"`
}

// Empty reports whether nothing changed.
func (d SnapshotDiff) Empty() bool {
	return len(d.Added)+len(d.Removed)+len(d.Changed) == 0
}

// Diff compares two snapshots. It is pure: it reads only its arguments.
func Diff(before, after Snapshot) SnapshotDiff {
	b, a := index(before), index(after)
	d := SnapshotDiff{Added: []Change{}, Removed: []Change{}, Changed: []Change{}}
	for k, ca := range a {
		cb, ok := b[k]
		switch {
		case !ok:
			d.Added = append(d.Added, ca.Change)
		case !slices.Equal(cb.fields, ca.fields):
			c := ca.Change
			c.What = fieldChanges(cb.fields, ca.fields)
			d.Changed = append(d.Changed, c)
		}
	}
	for k, cb := range b {
		if _, ok := a[k]; !ok {
			d.Removed = append(d.Removed, cb.Change)
		}
	}
	for _, l := range [][]Change{d.Added, d.Removed, d.Changed} {
		sortChanges(l)
	}
	return d
}

type objKey struct {
	kind  Kind
	id    int
	name  string
	inode uint64
}

type indexed struct {
	Change
	fields []field // fields compared for Changed, in print order
}

type field struct {
	name string
	val  int64
}

func index(s Snapshot) map[objKey]indexed {
	m := make(map[objKey]indexed, len(s.Sem)+len(s.Shm)+len(s.Msg)+len(s.Posix))
	put := func(k objKey, c Change, fs ...field) {
		m[k] = indexed{Change: c, fields: fs}
	}
	for _, o := range s.Sem {
		put(objKey{kind: KindSem, id: o.ID}, Change{Kind: KindSem, ID: o.ID, Key: o.Key, UID: o.UID, CTime: o.CTime},
			field{"uid", int64(o.UID)}, field{"perms", int64(o.Perms)}, field{"otime", o.OTime}, field{"ctime", o.CTime})
	}
	for _, o := range s.Shm {
		put(objKey{kind: KindShm, id: o.ID}, Change{Kind: KindShm, ID: o.ID, Key: o.Key, UID: o.UID, CTime: o.CTime},
			field{"uid", int64(o.UID)}, field{"perms", int64(o.Perms)}, field{"nattch", int64(o.NAttch)}, field{"ctime", o.CTime})
	}
	for _, o := range s.Msg {
		put(objKey{kind: KindMsg, id: o.ID}, Change{Kind: KindMsg, ID: o.ID, Key: o.Key, UID: o.UID, CTime: o.CTime},
			field{"uid", int64(o.UID)}, field{"perms", int64(o.Perms)}, field{"qnum", int64(o.QNum)}, field{"ctime", o.CTime})
	}
	for _, o := range s.Posix {
		put(objKey{kind: KindPosix, name: o.Name, inode: o.Inode}, Change{Kind: KindPosix, Name: o.Name, UID: o.UID, CTime: o.CTimeNs / 1e9},
			field{"uid", int64(o.UID)}, field{"mode", int64(o.Mode)}, field{"size", o.Size}, field{"holders", int64(len(o.Holders))})
	}
	return m
}

func fieldChanges(before, after []field) []string {
	var out []string
	for i := range after {
		if before[i].val != after[i].val {
			out = append(out, fmt.Sprintf("%s %d -> %d", after[i].name, before[i].val, after[i].val))
		}
	}
	return out
}

func sortChanges(l []Change) {
	sort.Slice(l, func(i, j int) bool {
		if l[i].Kind != l[j].Kind {
			return l[i].Kind < l[j].Kind
		}
		if l[i].ID != l[j].ID {
			return l[i].ID < l[j].ID
		}
		return l[i].Name < l[j].Name
	})
}

// String renders the diff one object a line: "+ sem 3 key 0 uid 33".
func (d SnapshotDiff) String() string {
	var b strings.Builder
	line := func(sign string, c Change) {
		if c.Kind == KindPosix {
			fmt.Fprintf(&b, "%s %s %s uid %d", sign, c.Kind, c.Name, c.UID)
		} else {
			fmt.Fprintf(&b, "%s %s %d key %s uid %d", sign, c.Kind, c.ID, keyString(int64(c.Key)), c.UID)
		}
		if len(c.What) > 0 {
			fmt.Fprintf(&b, ": %s", strings.Join(c.What, ", "))
		}
		b.WriteByte('\n')
	}
	for _, c := range d.Added {
		line("+", c)
	}
	for _, c := range d.Removed {
		line("-", c)
	}
	for _, c := range d.Changed {
		line("~", c)
	}
	return b.String()
}
