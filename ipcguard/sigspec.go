package ipcguard

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
)

// SigSpec is an IPC signature as an operator writes it: the flags of
// `safe-restart ipc` (--owner, --key, ...) or the [ipc] table of a service
// file. Every field is text as written; "" (or no Kinds) keeps the value of
// the signature it is applied to. The command line and service files share
// it, so a signature is checked the same way wherever it is written.
type SigSpec struct {
	Owner     string   // owner user: a name or a numeric uid
	Creator   string   // creator user: a name or a numeric uid
	Key       string   // IPC key: "private", "0" or 0xHEX
	Mode      string   // permission bits in octal, e.g. "0600"
	NSems     string   // semaphores per set, 1 or more
	Exe       string   // the service's executable, an absolute path
	Kinds     []string // sem, shm, msg, posix
	PosixGlob string   // glob of the service's /dev/shm names
}

// FieldNamer names a SigSpec field ("owner", "creator", "key", "mode",
// "nsems", "exe", "kinds", "posix_glob") as the operator wrote it, e.g.
// "--owner" on the command line or "ipc.owner" in a service file.
type FieldNamer func(field string) string

// SpecError is a signature field, or an executable path, that cannot be
// used; it names the field as the operator wrote it.
type SpecError struct {
	Field   string // e.g. "--key" or "ipc.key"
	Value   string // the value given
	Problem string // what is wrong with it
	Hint    string // how to write it instead
}

func (e *SpecError) Error() string {
	if e.Value == "" {
		return e.Field + ": " + e.Problem
	}
	return fmt.Sprintf("bad %s %q: %s", e.Field, e.Value, e.Problem)
}

// RequireIdentity insists that a signature of its own (one not derived from
// a known server) names at least the owner, the key and the executable:
// with any of them left open it would claim other software's sets
// (PostgreSQL's, php's sysvsem).
func (s SigSpec) RequireIdentity(name FieldNamer) error {
	if s.Owner != "" && s.Key != "" && s.Exe != "" {
		return nil
	}
	return &SpecError{
		Field:   "signature",
		Problem: fmt.Sprintf("a signature needs at least %s, %s and %s", name("owner"), name("key"), name("exe")),
		Hint:    fmt.Sprintf("give %s USER, %s private|0xHEX and %s PATH (and %s, %s, %s where known)", name("owner"), name("key"), name("exe"), name("nsems"), name("creator"), name("mode")),
	}
}

// Apply sets the fields of sig that the spec gives, and checks the
// resulting executable (CheckExe). Nothing is set when a field is wrong.
func (s SigSpec) Apply(sig *Signature, name FieldNamer) error {
	out := *sig
	var err error
	set := func(field, v string, parse func(string) (int64, string, string), dst *int64) {
		if v == "" || err != nil {
			return
		}
		n, problem, hint := parse(v)
		if problem != "" {
			err = &SpecError{Field: name(field), Value: v, Problem: problem, Hint: hint}
			return
		}
		*dst = n
	}
	set("owner", s.Owner, parseUser, &out.UID)
	set("creator", s.Creator, parseUser, &out.CUID)
	set("key", s.Key, parseKey, &out.Key)
	set("mode", s.Mode, parseMode, &out.Mode)
	nsems := int64(out.NSems)
	set("nsems", s.NSems, parseNSems, &nsems)
	if err != nil {
		return err
	}
	out.NSems = int(nsems)
	out.Exe = or(s.Exe, out.Exe)
	out.PosixGlob = or(s.PosixGlob, out.PosixGlob)
	if len(s.Kinds) > 0 {
		if out.Kinds, err = parseKinds(s.Kinds, name("kinds")); err != nil {
			return err
		}
	}
	if err := CheckExe(name("exe"), out.Exe); err != nil {
		return err
	}
	*sig = out
	return nil
}

// CustomSignature is the base a SigSpec completes: semaphore sets, every
// numeric field Any.
func CustomSignature(service string) Signature {
	return Signature{Service: service, Kinds: []Kind{KindSem}, Key: Any, NSems: Any, Mode: Any, UID: Any, CUID: Any}
}

// CheckExe refuses an executable that cannot be the server's: a relative
// or missing path would match no live process, and every set of the
// running server would look unheld. field names where it was given.
func CheckExe(field, exe string) error {
	if !filepath.IsAbs(exe) {
		return &SpecError{Field: field, Value: exe, Problem: "not an absolute path",
			Hint: "give the absolute path of the server binary, e.g. /usr/sbin/apache2"}
	}
	fi, err := os.Stat(exe)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return &SpecError{Field: field, Value: exe, Problem: "not an executable file",
			Hint: "give the path of the server binary itself (not a wrapper script or a link to nothing)"}
	}
	return nil
}

// ParseUser resolves a user name or a numeric uid to a uid.
func ParseUser(s string) (uint32, error) {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return uint32(n), nil
	}
	u, err := user.Lookup(s)
	if err != nil {
		return 0, fmt.Errorf("unknown user %q", s)
	}
	n, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("user %q has a non-numeric uid %q", s, u.Uid)
	}
	return uint32(n), nil
}

// The parsers below return the value, or a problem and a hint.

func parseUser(s string) (int64, string, string) {
	n, err := ParseUser(s)
	if err != nil {
		return 0, err.Error(), "give a user name or a numeric uid"
	}
	return int64(n), "", ""
}

func parseKey(s string) (int64, string, string) {
	if s == "private" || s == "0" {
		return 0, "", ""
	}
	if hex, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
		if n, err := strconv.ParseUint(hex, 16, 32); err == nil {
			return int64(int32(uint32(n))), "", ""
		}
	}
	return 0, "not an IPC key", "use private or a hex key such as 0x0001e240"
}

func parseNSems(s string) (int64, string, string) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, "not a positive number of semaphores", "give a positive number of semaphores"
	}
	return int64(n), "", ""
}

func parseMode(s string) (int64, string, string) {
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n > 0o777 {
		return 0, "not octal permission bits", "use octal permission bits such as 0600"
	}
	return int64(n), "", ""
}

func parseKinds(kinds []string, field string) ([]Kind, error) {
	var out []Kind
	for _, k := range kinds {
		switch kk := Kind(strings.TrimSpace(k)); kk {
		case KindSem, KindShm, KindMsg, KindPosix:
			out = append(out, kk)
		default:
			return nil, &SpecError{Field: field, Value: k, Problem: "not a kind of IPC object", Hint: "use sem, shm, msg or posix"}
		}
	}
	return out, nil
}
